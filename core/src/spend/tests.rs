#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::*;

/// Shared data in a map, with Envoy's compare-and-swap semantics.
#[derive(Default)]
struct MapStore {
    map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    /// Writes still to be beaten by another worker's write to the same key (see `set`).
    contended: Cell<u32>,
    /// Rows those other workers added.
    foreign: Cell<u64>,
}

impl Store for MapStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.map.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    /// While `contended` is above 0, another worker settles a request of its own into the same
    /// slot between this caller's read and its write, so the caller's compare-and-swap fails
    /// and it must read again.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        if self.contended.get() > 0 && key.starts_with(KEY_PREFIX) {
            self.contended.set(self.contended.get() - 1);
            let (bytes, current) = self.get(key);
            let mut ledger = bytes.as_deref().map(Ledger::decode).unwrap_or_default();
            ledger.add(&row("other-worker", "m", 1));
            self.foreign.set(self.foreign.get() + 1);
            self.write(key, &ledger.encode(), current);
        }
        self.write(key, value, cas)
    }
}

impl MapStore {
    fn write(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let mut map = self.map.borrow_mut();
        let current = map.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return false;
        }
        let next = current.unwrap_or(0) + 1;
        map.insert(key.to_owned(), (value.to_vec(), next));
        true
    }

    /// Every slot's rows, overflow rows included.
    fn rows(&self) -> Vec<Row> {
        let map = self.map.borrow();
        let mut rows = Vec::new();
        for slot in 0..SLOTS {
            if let Some((bytes, _)) = map.get(&slot_key(slot)) {
                let ledger = Ledger::decode(bytes);
                rows.extend(ledger.rows);
                rows.extend(ledger.overflow);
            }
        }
        rows
    }
}

const NOW: u64 = 1_709_208_000_000; // 2024-02-29T12:00:00Z

fn row(tenant: &str, model: &str, tokens: u64) -> Row {
    Row::settled(
        NOW,
        tenant,
        Some("key_1"),
        Some("web"),
        model,
        Usage {
            input: tokens,
            output: 2 * tokens,
            cached: tokens / 2,
        },
        10 * tokens,
    )
}

fn total(rows: &[Row]) -> (u64, u64, u64, u64) {
    rows.iter().fold((0, 0, 0, 0), |(r, i, o, c), row| {
        (
            r + row.requests,
            i + row.input_tokens,
            o + row.output_tokens,
            c + row.cost_nano_usd,
        )
    })
}

#[test]
fn requests_of_the_same_hour_tenant_key_project_and_model_add_up() {
    let store = MapStore::default();
    assert_eq!(record(&store, &row("acme", "m", 10)), Recorded::Added);
    assert_eq!(record(&store, &row("acme", "m", 5)), Recorded::Added);
    assert_eq!(record(&store, &row("acme", "n", 1)), Recorded::Added);
    let next_hour = Row {
        hour: NOW / 3_600_000 + 1,
        ..row("acme", "m", 1)
    };
    assert_eq!(record(&store, &next_hour), Recorded::Added);
    let mut rows = store.rows();
    rows.sort_by(|a, b| (a.hour, &a.model).cmp(&(b.hour, &b.model)));
    assert_eq!(rows.len(), 3);
    let first = &rows[0];
    assert_eq!(
        (first.model.as_str(), first.requests, first.input_tokens),
        ("m", 2, 15)
    );
    assert_eq!(
        (
            first.output_tokens,
            first.cached_tokens,
            first.cost_nano_usd
        ),
        (30, 7, 150)
    );
    assert_eq!(first.entry().key.as_deref(), Some("key_1"));
    assert_eq!(first.entry().project.as_deref(), Some("web"));
    assert_eq!(rows[1].model, "n");
    assert_eq!(rows[2].hour, first.hour + 1);
}

#[test]
fn a_slot_holds_a_bounded_number_of_rows_and_the_rest_overflows() {
    let store = MapStore::default();
    // Far more distinct rows than the ledger holds: every slot fills and overflows.
    let count = 5 * MAX_ROWS;
    let mut overflowed = 0;
    for i in 0..count {
        match record(&store, &row(&format!("tenant-{i}"), "m", 1)) {
            Recorded::Added => {}
            Recorded::Overflowed => overflowed += 1,
            Recorded::Failed => panic!("write failed"),
        }
    }
    let rows = store.rows();
    assert!(rows.len() <= MAX_ROWS, "{} rows", rows.len());
    // Every slot took its fill of rows of their own, then one overflow row (one hour).
    assert_eq!(rows.len(), SLOTS as usize * (ROWS_PER_SLOT + 1));
    assert_eq!(overflowed, count - SLOTS as usize * ROWS_PER_SLOT);
    let overflow: Vec<&Row> = rows
        .iter()
        .filter(|r| r.tenant == OVERFLOW_TENANT)
        .collect();
    assert_eq!(overflow.len(), SLOTS as usize);
    assert!(
        overflow
            .iter()
            .all(|r| r.model == OVERFLOW_MODEL && r.key.is_none() && r.project.is_none())
    );
    // Nothing is lost from the totals: the overflow rows hold the rest.
    let count = count as u64;
    assert_eq!(total(&rows), (count, count, 2 * count, 10 * count));
    // Later hours get overflow rows of their own, up to the bound; past it the latest takes
    // the rest.
    for hour in 1..5 {
        for i in 0..MAX_ROWS {
            let late = Row {
                hour: NOW / 3_600_000 + hour,
                ..row(&format!("late-{i}"), "m", 1)
            };
            record(&store, &late);
        }
    }
    let rows = store.rows();
    assert_eq!(rows.len(), MAX_ROWS);
    let all = count + 4 * MAX_ROWS as u64;
    assert_eq!(total(&rows).0, all);
}

#[test]
fn take_empties_the_ledger_and_put_back_adds_to_what_came_since() {
    let store = MapStore::default();
    record(&store, &row("acme", "m", 10));
    record(&store, &row("beta", "m", 3));
    let mut taken = take(&store);
    taken.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    assert_eq!(taken.len(), 2);
    assert_eq!(taken[0].entry().tenant, "acme");
    assert!(store.rows().is_empty());
    assert!(take(&store).is_empty(), "nothing twice");
    // The report was not stored: the rows go back, beside a request settled meanwhile.
    record(&store, &row("acme", "m", 1));
    assert_eq!(put_back(&store, &taken), PutBack::default());
    let rows = store.rows();
    assert_eq!(rows.len(), 2);
    let acme = rows.iter().find(|r| r.tenant == "acme").unwrap();
    assert_eq!((acme.requests, acme.input_tokens), (2, 11));
    assert_eq!(total(&rows), (3, 14, 28, 140));
}

#[test]
fn put_back_into_a_full_slot_overflows_and_keeps_the_sums() {
    let store = MapStore::default();
    let first = row("acme", "m", 4);
    record(&store, &first);
    let taken = take(&store);
    // The slot fills with other rows before the failed report's rows come back.
    let slot = home(&first);
    let mut i = 0;
    while store.rows().iter().filter(|r| home(r) == slot).count() < ROWS_PER_SLOT {
        let other = row(&format!("t{i}"), "m", 1);
        if home(&other) == slot {
            record(&store, &other);
        }
        i += 1;
    }
    let back = put_back(&store, &taken);
    assert_eq!(
        back,
        PutBack {
            overflowed: 1,
            lost: 0
        }
    );
    let overflow = store
        .rows()
        .into_iter()
        .find(|r| r.tenant == OVERFLOW_TENANT)
        .unwrap();
    assert_eq!((overflow.requests, overflow.input_tokens), (1, 4));
}

#[test]
fn concurrent_writers_retry_and_nothing_is_lost() {
    let store = MapStore::default();
    // As the hosts do at configuration: every slot exists, so every write is a
    // compare-and-swap (a missing key has no token to compare against).
    for slot in 0..SLOTS {
        assert!(store.write(&slot_key(slot), &[], None));
    }
    // Three writes in a row lose to another worker's: each is read again and retried.
    store.contended.set(3);
    assert_eq!(record(&store, &row("acme", "m", 10)), Recorded::Added);
    assert_eq!(store.contended.get(), 0);
    let rows = store.rows();
    let acme = rows.iter().find(|r| r.tenant == "acme").unwrap();
    assert_eq!(acme.requests, 1, "added once, whatever the retries");
    let other = rows.iter().find(|r| r.tenant == "other-worker").unwrap();
    assert_eq!(other.requests, store.foreign.get());
    assert_eq!(other.requests, 3);

    // Taking rows retries too: what the other worker adds meanwhile is either taken or left.
    store.contended.set(2);
    let taken = take(&store);
    let left = store.rows();
    assert_eq!(
        total(&taken).0 + total(&left).0,
        1 + store.foreign.get(),
        "every request is in the report or still in the ledger"
    );

    // A slot that never stops being written: the write fails after every attempt, and says so.
    store.contended.set(u32::MAX);
    assert_eq!(record(&store, &row("late", "m", 1)), Recorded::Failed);
    let lost = put_back(&store, &[row("late", "m", 1)]);
    assert_eq!(
        lost,
        PutBack {
            overflowed: 0,
            lost: 1
        }
    );
}

#[test]
fn slot_keys_and_indexes() {
    assert_eq!(slot_key(7), "sluice.spend.7");
    assert_eq!(slot_index(&slot_key(63)), Some(63));
    assert_eq!(slot_index("sluice.spend.64"), None);
    assert_eq!(slot_index("sluice.q.1"), None);
    const { assert!(MAX_ROWS <= MAX_SPEND_ENTRIES) };
}

#[test]
fn reports_name_tenants_projects_and_keys_as_the_admin_api_does() {
    assert_eq!(reported_name("team-1.prod:eu_west"), "team-1.prod:eu_west");
    assert_eq!(reported_name("config:ba7816bf"), "config:ba7816bf");
    // A tenant from a header or the configuration may hold any visible character.
    assert_eq!(reported_name("team a/b@x"), "team_a_b_x");
    assert_eq!(reported_name("é"), "__");
    assert_eq!(reported_name(""), "-");
    assert_eq!(reported_name(&"x".repeat(300)).len(), 128);
    assert_eq!(
        reported_model("meta-llama/Llama-3.1-8B-Instruct"),
        "meta-llama/Llama-3.1-8B-Instruct"
    );
    assert_eq!(reported_model(&"m".repeat(300)).len(), 128);
    let row = Row {
        project: Some("web app".into()),
        ..row("a|b", "m", 1)
    };
    let entry = row.entry();
    assert_eq!(
        (entry.tenant.as_str(), entry.project.as_deref()),
        ("a_b", Some("web_app"))
    );
}
