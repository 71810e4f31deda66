//! Reading Envoy's `/stats/prometheus`: samples of the filter's metrics by name and label,
//! histograms by their count and sum. Metrics are named as the filter names them
//! (`sluice_tokens_total`); the page knows which host wrote it and looks them up under that
//! host's Prometheus name (`Host::prometheus`).

use std::fmt;
use std::time::{Duration, Instant};

use crate::gateway::{Gateway, client};
use crate::host::Host;

/// One read of the Prometheus page of a gateway.
pub struct Page {
    pub host: Host,
    pub text: String,
}

impl fmt::Display for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The Prometheus page, once the filter's tick has handed its metrics to Envoy.
pub async fn page(gateway: &Gateway) -> Page {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = client()
        .get(format!("http://{}/stats/prometheus", gateway.envoy.admin))
        .send()
        .await
        .expect("GET /stats/prometheus")
        .text()
        .await
        .expect("Prometheus text");
    Page {
        host: gateway.host(),
        text,
    }
}

/// The value of the sample of the filter's `metric` whose labels include all of `labels` (each
/// written `name="value"`), 0 when absent.
pub fn sample(page: &Page, metric: &str, labels: &[&str]) -> f64 {
    find(page, metric, labels).unwrap_or(0.0)
}

/// The value of the sample of the filter's `metric` whose labels include all of `labels`, if
/// there is one.
pub fn find(page: &Page, metric: &str, labels: &[&str]) -> Option<f64> {
    let metric = page.host.prometheus(metric);
    page.text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(name, _)| {
            (name.starts_with(&format!("{metric}{{")) || *name == metric)
                && labels.iter().all(|l| name.contains(l))
        })
        .map(|(_, value)| value.parse().expect("numeric sample"))
}

/// `(count, sum)` of histogram `metric{labels}`; (0, 0) when absent.
pub fn histogram(page: &Page, metric: &str, labels: &[&str]) -> (f64, f64) {
    (
        sample(page, &format!("{metric}_count"), labels),
        sample(page, &format!("{metric}_sum"), labels),
    )
}

/// Waits until `metric{labels}` reads `value`, and returns the page that showed it:
/// histograms reach the admin page only when Envoy flushes stats (every 5 s by default).
pub async fn wait_for(gateway: &Gateway, metric: &str, labels: &[&str], value: f64) -> Page {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let page = page(gateway).await;
        let seen = sample(&page, metric, labels);
        if seen == value {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{metric} {labels:?} is {seen}, not {value}:\n{page}"
        );
    }
}

/// The value of the sample of the filter's `metric` whose labels are exactly `labels` (each
/// written `name="value"`, in any order; labels with an empty value do not count), 0 when
/// absent.
pub fn sample_exact(page: &Page, metric: &str, labels: &[&str]) -> f64 {
    let metric = page.host.prometheus(metric);
    let mut wanted: Vec<&str> = labels.to_vec();
    wanted.sort_unstable();
    page.text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(name, _)| {
            let Some(rest) = name.strip_prefix(metric.as_str()) else {
                return false;
            };
            let inner = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .unwrap_or(rest);
            if !rest.is_empty() && inner.len() == rest.len() {
                return false; // another metric whose name starts with `metric`
            }
            let mut have: Vec<&str> = if inner.is_empty() {
                Vec::new()
            } else {
                // A label whose value is empty is no label (Prometheus's data model): the
                // native module's metrics have a fixed label set and leave an unknown model
                // empty, where the Wasm build's names leave it out.
                inner
                    .split("\",")
                    .map(|l| l.trim_end_matches('"'))
                    .filter(|l| !l.ends_with('='))
                    .collect()
            };
            have.sort_unstable();
            let wanted: Vec<String> = wanted
                .iter()
                .map(|l| l.trim_end_matches('"').to_owned())
                .collect();
            have == wanted
        })
        .map_or(0.0, |(_, value)| value.parse().expect("numeric sample"))
}
