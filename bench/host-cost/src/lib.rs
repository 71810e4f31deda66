//! A probe filter for `make bench-host-cost`: it does nothing but the host interactions its
//! plugin configuration (a bit mask, see `Step`) turns on, so that running Envoy with each mask
//! under the same load shows what every mechanism the Sluice filter uses costs per request in
//! Envoy's V8: merely being loaded, reading headers one by one or as one map, pausing for the
//! body, reading it, setting headers, clearing the route cache, shared data, counters, the clock.
//! Not part of the gateway; `measure.py` drives it.

#[cfg(target_os = "wasi")]
mod probe;
