//! A strict reader of the text exposition format 0.0.4, for tests: it refuses what
//! Prometheus would refuse (and some things it tolerates but we never mean to write: a family
//! split in two, a counter without `_total`, a histogram that is not cumulative) and returns
//! every series by name and labels. `prometheus-parse` skips lines it cannot read, so it
//! cannot tell a good exposition from a bad one on its own.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// One family as read: its type and help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyRead {
    pub kind: String,
    pub help: String,
}

/// Everything read from an exposition.
#[derive(Debug, Default)]
pub struct ExpositionRead {
    pub families: BTreeMap<String, FamilyRead>,
    /// `name{label="value",...}` (labels sorted by name) -> value.
    pub series: BTreeMap<String, f64>,
}

impl ExpositionRead {
    /// The value of the series `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series.get(&series_key(name, labels)).copied()
    }
}

/// The key of a series: its name and its labels sorted by name.
pub fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut sorted: Vec<(&str, &str)> = labels.to_vec();
    sorted.sort();
    let inner: Vec<String> = sorted
        .iter()
        .map(|(label, value)| format!("{label}=\"{value}\""))
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

fn is_metric_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && characters.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads `{a="x",b="y"}` (the braces already stripped), unescaping the values.
fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("label without =\" in {{{text}}}"))?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut characters = after.char_indices();
        let end = loop {
            match characters.next() {
                Some((_, '\\')) => match characters.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {{{text}}}")),
                },
                Some((index, '"')) => break index,
                Some((_, '\n')) => return Err("newline in a label value".to_string()),
                Some((_, character)) => value.push(character),
                None => return Err(format!("unterminated label value in {{{text}}}")),
            }
        };
        if labels.iter().any(|(seen, _)| seen == name) {
            return Err(format!("label {name} twice"));
        }
        labels.push((name.to_string(), value));
        rest = &after[end + 1..];
        if let Some(next) = rest.strip_prefix(',') {
            rest = next;
        } else if !rest.is_empty() {
            return Err(format!("junk after a label value in {{{text}}}"));
        }
    }
    Ok(labels)
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("bad value {text:?}")),
    }
}

/// Histogram series of one label set: buckets by `le`, sum, count.
#[derive(Default)]
struct HistogramRead {
    buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

/// Reads `text` strictly; the first violation is the error.
pub fn read_exposition(text: &str) -> Result<ExpositionRead, String> {
    let mut read = ExpositionRead::default();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut helped: BTreeSet<String> = BTreeSet::new();
    let mut histograms: BTreeMap<String, HistogramRead> = BTreeMap::new();
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the exposition does not end in a newline".to_string());
    }
    for (number, line) in text.lines().enumerate() {
        let at = |message: String| format!("line {}: {message}: {line:?}", number + 1);
        if let Some(comment) = line.strip_prefix("# ") {
            let (keyword, rest) = comment
                .split_once(' ')
                .ok_or_else(|| at("bad comment".into()))?;
            let (name, argument) = rest
                .split_once(' ')
                .ok_or_else(|| at("bad comment".into()))?;
            if !is_metric_name(name) {
                return Err(at(format!("bad family name {name:?}")));
            }
            if current.as_deref() != Some(name) {
                if finished.contains(name) {
                    return Err(at(format!("family {name} appears twice")));
                }
                if let Some(previous) = current.take() {
                    finished.insert(previous);
                }
                current = Some(name.to_string());
            }
            match keyword {
                "HELP" => {
                    if !helped.insert(name.to_string()) {
                        return Err(at("a second HELP".into()));
                    }
                    read.families.entry(name.to_string()).or_insert(FamilyRead {
                        kind: String::new(),
                        help: String::new(),
                    });
                    read.families.get_mut(name).unwrap().help = argument.to_string();
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&argument)
                    {
                        return Err(at(format!("bad type {argument:?}")));
                    }
                    if argument == "counter" && !name.ends_with("_total") {
                        return Err(at("a counter without _total".into()));
                    }
                    let family = read.families.entry(name.to_string()).or_insert(FamilyRead {
                        kind: String::new(),
                        help: String::new(),
                    });
                    if !family.kind.is_empty() {
                        return Err(at("a second TYPE".into()));
                    }
                    family.kind = argument.to_string();
                }
                _ => return Err(at("a comment that is neither HELP nor TYPE".into())),
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            return Err(at("an empty or unknown line".into()));
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value".into()))?;
        let value = parse_value(value).map_err(at)?;
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .ok_or_else(|| at("labels without }".into()))?;
                (name, parse_labels(labels).map_err(at)?)
            }
            None => (series, Vec::new()),
        };
        if !is_metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let family_name = current
            .clone()
            .ok_or_else(|| at("a sample before any TYPE".into()))?;
        let family = read
            .families
            .get(&family_name)
            .filter(|family| !family.kind.is_empty())
            .ok_or_else(|| at("a sample before its TYPE".into()))?
            .clone();
        let labels_ref: Vec<(&str, &str)> = labels
            .iter()
            .map(|(label, value)| (label.as_str(), value.as_str()))
            .collect();
        if family.kind == "histogram" {
            let without_le: Vec<(&str, &str)> = labels_ref
                .iter()
                .copied()
                .filter(|(label, _)| *label != "le")
                .collect();
            let histogram = histograms
                .entry(series_key(&family_name, &without_le))
                .or_default();
            if name == format!("{family_name}_bucket") {
                let le = labels_ref
                    .iter()
                    .find(|(label, _)| *label == "le")
                    .ok_or_else(|| at("a bucket without le".into()))?;
                histogram
                    .buckets
                    .push((parse_value(le.1).map_err(at)?, value));
            } else if name == format!("{family_name}_sum") {
                histogram.sum = Some(value);
            } else if name == format!("{family_name}_count") {
                histogram.count = Some(value);
            } else {
                return Err(at(format!(
                    "{name} is not a series of histogram {family_name}"
                )));
            }
        } else if name != family_name {
            return Err(at(format!("{name} is not family {family_name}")));
        }
        if read
            .series
            .insert(series_key(name, &labels_ref), value)
            .is_some()
        {
            return Err(at("a series twice".into()));
        }
    }
    for (key, histogram) in &histograms {
        let (Some(_), Some(count)) = (histogram.sum, histogram.count) else {
            return Err(format!("histogram {key} lacks _sum or _count"));
        };
        let mut previous = (f64::NEG_INFINITY, 0.0);
        for &(le, cumulative) in &histogram.buckets {
            if le <= previous.0 || cumulative < previous.1 {
                return Err(format!(
                    "histogram {key}: buckets not in order or not cumulative"
                ));
            }
            previous = (le, cumulative);
        }
        if previous.0 != f64::INFINITY || previous.1 != count {
            return Err(format!("histogram {key}: the +Inf bucket is not the count"));
        }
    }
    for (name, family) in &read.families {
        if family.kind.is_empty() || !helped.contains(name) {
            return Err(format!("family {name} lacks HELP or TYPE"));
        }
    }
    Ok(read)
}
