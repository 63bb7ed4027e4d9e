//! `tune_threads` sets candle's spin limit only where the user has not (dia-nn::threads). One
//! test in its own process: it changes the environment.

use dia_nn::threads::CANDLE_SPIN_ENV;

#[test]
fn tune_threads_sets_an_unset_limit_and_keeps_the_users() {
    std::env::remove_var(CANDLE_SPIN_ENV);
    assert_eq!(dia_nn::tune_threads(), Some(0));
    assert_eq!(std::env::var(CANDLE_SPIN_ENV).as_deref(), Ok("0"));

    std::env::set_var(CANDLE_SPIN_ENV, "500");
    assert_eq!(dia_nn::tune_threads(), Some(500));
    assert_eq!(std::env::var(CANDLE_SPIN_ENV).as_deref(), Ok("500"));

    std::env::set_var(CANDLE_SPIN_ENV, "lots");
    assert_eq!(dia_nn::tune_threads(), None);
    assert_eq!(std::env::var(CANDLE_SPIN_ENV).as_deref(), Ok("lots"));
}
