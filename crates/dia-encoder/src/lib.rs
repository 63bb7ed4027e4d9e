//! ResNet-18 encoders with SimCLR and shift heads (spec §5.4, §8).
//!
//! `resnet18` (CIFAR stem) and `resnet18_imagenet` with the `linear`, `simclr_layer`,
//! `shift_cls_layer` and `joint_distribution_layer` heads, parameter names as the reference's
//! state dict, and loading of reference `.model` checkpoints.
//!
//! **Status:** skeleton. The implementation lands with issue #5 of the tracker; until then
//! this crate only fixes its place in the workspace and its dependencies.
#![forbid(unsafe_code)]
