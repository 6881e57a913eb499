//! The load generators of `bench compare` (wrk and ab, run in the network namespace) and the
//! parsing of what they print.

use std::path::Path;
use std::process::Command;

use crate::Failure;

/// The percentiles the wrk script prints, for the latency plots.
pub const PERCENTILES: &[f64] = &[50.0, 75.0, 90.0, 99.0, 99.9, 99.99];

/// wrk's `done()` hook: the exact percentiles (p99.9 is not in `--latency`'s table) and the
/// error counts, one `key=value` line each, latencies in microseconds.
pub const WRK_SCRIPT: &str = r#"-- Written by cargo xtask bench compare.
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("compare-summary: requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, errors.connect, errors.read, errors.write, errors.status, errors.timeout))
  for _, p in ipairs({50, 75, 90, 99, 99.9, 99.99}) do
    io.write(string.format("compare-latency: p=%g us=%d\n", p, latency:percentile(p)))
  end
end
"#;

/// One wrk run's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses.
    pub errors: u64,
    /// (percentile, milliseconds), in the order of [`PERCENTILES`].
    pub latency: Vec<(f64, f64)>,
}

impl WrkResult {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn percentile(&self, percentile: f64) -> Option<f64> {
        self.latency
            .iter()
            .find(|(p, _)| (p - percentile).abs() < 1e-9)
            .map(|(_, milliseconds)| *milliseconds)
    }
}

/// One ab run's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct AbResult {
    pub rate: f64,
    pub complete: u64,
    /// Failed requests plus non-2xx responses.
    pub errors: u64,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

fn number<T: std::str::FromStr>(line: &str, key: &str) -> Result<T, Failure> {
    field(line, key)
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| Failure(format!("wrk output: no {key}= in `{line}`")))
}

/// Parses the lines [`WRK_SCRIPT`] adds to wrk's output.
pub fn parse_wrk(output: &str) -> Result<WrkResult, Failure> {
    let summary = output
        .lines()
        .find(|line| line.starts_with("compare-summary:"))
        .ok_or_else(|| Failure(format!("wrk printed no summary:\n{output}")))?;
    let errors = ["connect", "read", "write", "status", "timeout"]
        .iter()
        .map(|key| number::<u64>(summary, key))
        .sum::<Result<u64, Failure>>()?;
    let mut latency = Vec::new();
    for line in output
        .lines()
        .filter(|line| line.starts_with("compare-latency:"))
    {
        let percentile: f64 = number(line, "p")?;
        let microseconds: f64 = number(line, "us")?;
        latency.push((percentile, microseconds / 1000.0));
    }
    if latency.len() != PERCENTILES.len() {
        return Err(Failure(format!(
            "wrk printed {} percentiles:\n{output}",
            latency.len()
        )));
    }
    Ok(WrkResult {
        requests: number(summary, "requests")?,
        seconds: number::<f64>(summary, "duration_us")? / 1e6,
        errors,
        latency,
    })
}

/// Parses ApacheBench's report.
pub fn parse_ab(output: &str) -> Result<AbResult, Failure> {
    let value = |label: &str, index: usize| -> Option<&str> {
        output
            .lines()
            .find(|line| line.starts_with(label))
            .and_then(|line| line.split_whitespace().nth(index))
    };
    let rate = value("Requests per second:", 3).and_then(|v| v.parse().ok());
    let complete = value("Complete requests:", 2).and_then(|v| v.parse().ok());
    let failed: Option<u64> = value("Failed requests:", 2).and_then(|v| v.parse().ok());
    let non_2xx: u64 = value("Non-2xx responses:", 2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    match (rate, complete, failed) {
        (Some(rate), Some(complete), Some(failed)) => Ok(AbResult {
            rate,
            complete,
            errors: failed + non_2xx,
        }),
        _ => Err(Failure(format!("ab printed no report:\n{output}"))),
    }
}

/// How a wrk run talks to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connections {
    /// `Connection: close`: one request per connection.
    Close,
    /// HTTP/1.1 keep-alive: many requests per connection.
    KeepAlive,
}

/// What every load run shares.
pub struct LoadSettings<'a> {
    pub namespace: &'a str,
    pub concurrency: u32,
    pub threads: u32,
    pub seconds: u32,
    pub script: &'a Path,
}

/// Runs wrk from the namespace against `url`.
pub fn wrk(
    settings: &LoadSettings,
    url: &str,
    connections: Connections,
) -> Result<WrkResult, Failure> {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", settings.namespace, "wrk"])
        .arg(format!("-t{}", settings.threads))
        .arg(format!("-c{}", settings.concurrency))
        .arg(format!("-d{}s", settings.seconds))
        .args(["--timeout", "10s", "--latency", "-s"])
        .arg(settings.script);
    if connections == Connections::Close {
        command.args(["-H", "Connection: close"]);
    }
    let output = command
        .arg(url)
        .output()
        .map_err(|error| Failure(format!("cannot run wrk: {error}")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(Failure(format!(
            "wrk failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    parse_wrk(&text)
}

/// Runs ApacheBench (HTTP/1.0, no keep-alive) from the namespace for `seconds`.
pub fn ab(settings: &LoadSettings, url: &str) -> Result<AbResult, Failure> {
    let output = Command::new("ip")
        .args(["netns", "exec", settings.namespace, "ab", "-q", "-r"])
        // -t implies -n 50000, so -n must come after it to lift that cap.
        .args(["-t", &settings.seconds.to_string(), "-n", "100000000"])
        .args(["-c", &settings.concurrency.to_string(), "-s", "10", url])
        .output()
        .map_err(|error| Failure(format!("cannot run ab: {error}")))?;
    parse_ab(&String::from_utf8_lossy(&output.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUTPUT: &str = "Running 3s test @ http://10.77.0.2/
  2 threads and 64 connections
  Latency Distribution
     50%   10.00ms
  6550 requests in 3.05s, 188.70KB read
Requests/sec:   2147.54
compare-summary: requests=6550 duration_us=3050000 connect=0 read=3 write=0 status=2 timeout=1
compare-latency: p=50 us=10000
compare-latency: p=75 us=12000
compare-latency: p=90 us=15000
compare-latency: p=99 us=40000
compare-latency: p=99.9 us=80500
compare-latency: p=99.99 us=99000
";

    #[test]
    fn wrk_figures_come_from_the_script_lines() {
        let result = parse_wrk(WRK_OUTPUT).unwrap();
        assert_eq!(result.requests, 6550);
        assert_eq!(result.errors, 6);
        assert!((result.rate() - 6550.0 / 3.05).abs() < 1e-9);
        assert_eq!(result.percentile(99.9), Some(80.5));
        assert_eq!(result.percentile(50.0), Some(10.0));
        assert_eq!(result.latency.len(), PERCENTILES.len());
    }

    #[test]
    fn wrk_output_without_the_script_lines_is_an_error() {
        assert!(parse_wrk("Requests/sec: 100\n").is_err());
        let missing_percentile = WRK_OUTPUT.replace("compare-latency: p=99.99 us=99000\n", "");
        assert!(parse_wrk(&missing_percentile).is_err());
    }

    #[test]
    fn ab_figures_and_errors() {
        let output = "Complete requests:      20000
Failed requests:        3
   (Connect: 0, Receive: 0, Length: 3, Exceptions: 0)
Non-2xx responses:      4
Requests per second:    12915.08 [#/sec] (mean)
";
        let result = parse_ab(output).unwrap();
        assert_eq!(result.complete, 20000);
        assert_eq!(result.errors, 7);
        assert_eq!(result.rate, 12915.08);
        assert!(parse_ab("apr_socket_recv: Connection reset by peer (104)\n").is_err());
    }
}
