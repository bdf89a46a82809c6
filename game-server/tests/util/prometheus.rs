//! A strict reader of the Prometheus text exposition format (version 0.0.4): every line
//! must be a `# HELP`, a `# TYPE` or a sample of a declared family, with valid names,
//! labels and values, each family's lines together, no series twice.

use std::collections::{BTreeMap, HashSet};

/// A scrape: families by name, samples by series (`name{labels}` as sent).
#[derive(Debug, Default)]
pub struct Scrape {
    /// Family name -> type (`counter`, `gauge`, `histogram`, `summary`, `untyped`).
    pub types: BTreeMap<String, String>,
    /// Family name -> help text.
    pub help: BTreeMap<String, String>,
    /// Series -> value.
    pub samples: BTreeMap<String, f64>,
}

impl Scrape {
    /// The value of a series without labels; panics if it is missing.
    pub fn value(&self, name: &str) -> f64 {
        *self
            .samples
            .get(name)
            .unwrap_or_else(|| panic!("no sample {name}; have {:?}", self.samples.keys()))
    }

    /// The value of one series, `name{label="value",...}` as the exposition writes it;
    /// panics if it is missing.
    pub fn series(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let list: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        self.value(&format!("{name}{{{}}}", list.join(",")))
    }

    /// The `le` buckets of histogram-shaped `name` (`NAME_bucket` of a histogram, or a
    /// gauge family with an `le` label), sorted by bound: `(bound, value)`.
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter_map(|(series, &value)| {
                let le = series.strip_prefix(name)?.strip_prefix("{le=\"")?;
                let le = le.strip_suffix("\"}")?;
                Some((parse_value(le).ok()?, value))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// The family a sample name belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            ) {
                return Some(base);
            }
        }
    }
    None
}

/// Label names and values of one sample, in order.
type Labels = Vec<(String, String)>;

/// Parses `{a="x",b="y"}` at the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once("=\"").ok_or("expected label=\"")?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("newline in label value".into()),
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Scrape, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("no newline at the end".into());
    }
    let mut scrape = Scrape::default();
    let mut finished = HashSet::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        let mut switch_to = |family: &str, current: &mut Option<String>| -> Result<(), String> {
            if current.as_deref() != Some(family) {
                if let Some(done) = current.take() {
                    finished.insert(done);
                }
                if finished.contains(family) {
                    return Err(format!("family {family} is split"));
                }
                *current = Some(family.to_owned());
            }
            Ok(())
        };
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(name), help) => {
                    if !is_metric_name(name) {
                        return Err(at(format!("bad name {name:?}")));
                    }
                    switch_to(name, &mut current).map_err(at)?;
                    let help = help.unwrap_or_default().to_owned();
                    if scrape.help.insert(name.to_owned(), help).is_some() {
                        return Err(at("HELP twice".into()));
                    }
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_metric_name(name) {
                        return Err(at(format!("bad name {name:?}")));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("bad type {kind:?}")));
                    }
                    switch_to(name, &mut current).map_err(at)?;
                    if scrape
                        .samples
                        .keys()
                        .any(|s| family_of(s, &scrape.types) == Some(name))
                    {
                        return Err(at("TYPE after samples".into()));
                    }
                    if scrape
                        .types
                        .insert(name.to_owned(), kind.to_owned())
                        .is_some()
                    {
                        return Err(at("TYPE twice".into()));
                    }
                }
                _ => {} // other comments are allowed
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at(format!("bad name {name:?}")));
        }
        let family = family_of(name, &scrape.types)
            .ok_or_else(|| at(format!("sample {name} without a TYPE")))?;
        switch_to(family, &mut current).map_err(at)?;
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?
            .split(' ');
        let value = parse_value(fields.next().unwrap_or_default()).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| at(format!("bad timestamp {ts:?}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let mut names = HashSet::new();
        if !labels.iter().all(|(k, _)| names.insert(k)) {
            return Err(at("a label twice".into()));
        }
        if scrape.types[family] == "counter" && (value < 0.0 || value.is_nan()) {
            return Err(at("negative counter".into()));
        }
        let series = if labels.is_empty() {
            name.to_owned()
        } else {
            let list: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{name}{{{}}}", list.join(","))
        };
        if scrape.samples.insert(series, value).is_some() {
            return Err(at("series twice".into()));
        }
    }
    Ok(scrape)
}
