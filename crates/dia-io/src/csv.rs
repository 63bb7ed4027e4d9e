//! Every CSV the project writes and reads (`scores.csv`, `results.csv`, `metrics.csv`, the
//! output of `dia predict`), through the `csv` crate: fields holding a comma, a quote or a
//! newline (a file named `a,b.png`) are quoted on write and read back whole.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let p = dir.path().join("s.csv");
//! dia_io::csv::write_csv(&p, &["source", "score"], [["a,b.png", "0.5"]])?;
//! let (header, rows) = dia_io::csv::read_csv(&p)?;
//! assert_eq!((header[0].as_str(), rows[0][0].as_str()), ("source", "a,b.png"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use crate::atomic::write_atomic;
use crate::error::{format_err, io_err, Result};

/// The CSV text of `header` and `rows`.
pub fn to_csv<I, R, S>(header: &[&str], rows: I) -> String
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut w = ::csv::WriterBuilder::new()
        .flexible(false)
        .from_writer(Vec::new());
    // Writing to memory cannot fail, and the field counts are the caller's (a mismatch is
    // a programming error the tests catch): both unwraps are on infallible paths.
    w.write_record(header).expect("in-memory CSV");
    for row in rows {
        let row: Vec<S> = row.into_iter().collect();
        w.write_record(row.iter().map(AsRef::as_ref))
            .expect("in-memory CSV, one field per column");
    }
    String::from_utf8(w.into_inner().expect("in-memory CSV")).expect("UTF-8 fields")
}

/// Writes a CSV file atomically.
pub fn write_csv<I, R, S>(path: &Path, header: &[&str], rows: I) -> Result<()>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let text = to_csv(header, rows);
    write_atomic(path, |f| std::io::Write::write_all(f, text.as_bytes()))
}

/// Reads a CSV file: its header and every record, each with as many fields as the header.
pub fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut r = ::csv::ReaderBuilder::new().from_reader(std::io::BufReader::new(file));
    let header = r
        .headers()
        .map_err(|e| format_err(path, format!("not a readable CSV file: {e}")))?
        .iter()
        .map(String::from)
        .collect();
    let rows = r
        .records()
        .map(|rec| {
            rec.map(|rec| rec.iter().map(String::from).collect())
                .map_err(|e| format_err(path, format!("not a readable CSV file: {e}")))
        })
        .collect::<Result<_>>()?;
    Ok((header, rows))
}
