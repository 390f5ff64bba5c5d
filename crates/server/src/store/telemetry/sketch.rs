//! Latency sketches from outside: checked before they are merged, stored or read back.
//!
//! A DDSketch's serde form is its internals (bins, offsets, key range, counts), and the
//! sketch crate trusts them: a crafted sketch can index out of bounds or overflow a count
//! when merged. So every sketch that comes from an SDK or from a database row is checked
//! first, on its JSON form, for exactly what merging and quantiles rely on: the default
//! configuration (1% relative accuracy, 2048 bins), a key range inside the bins, bins that
//! add up to the counts, and totals small enough that no merge can overflow.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;
use sluice_core::rollout::LatencySketch;

/// The most requests one sketch may hold; sums of such counts never overflow.
pub(crate) const MAX_SKETCH_COUNT: u64 = 1 << 50;

/// The largest magnitude of a sketch's `min`, `max` and `sum`.
const MAX_MAGNITUDE: f64 = 1e200;

/// The configuration every sketch must have, as JSON, so that any two merge.
static DEFAULT_CONFIG: LazyLock<Value> = LazyLock::new(|| {
    serde_json::to_value(LatencySketch::default())
        .ok()
        .and_then(|sketch| sketch.get("config").cloned())
        .unwrap_or(Value::Null)
});

/// The parts of a sketch's serde form that merging and quantiles rely on.
#[derive(Debug, Deserialize)]
struct Shape {
    store: StoreShape,
    negative_store: StoreShape,
    min: f64,
    max: f64,
    sum: f64,
    zero_count: u64,
}

#[derive(Debug, Deserialize)]
struct StoreShape {
    bins: Vec<u64>,
    count: u64,
    min_key: i32,
    max_key: i32,
    offset: i32,
    bin_limit: usize,
}

impl StoreShape {
    fn check(&self, max_bins: u64, name: &str) -> Result<(), String> {
        if self.bins.len() as u64 > max_bins || self.bin_limit as u64 != max_bins {
            return Err(format!(
                "{name} has more bins than the configuration allows"
            ));
        }
        let total = self
            .bins
            .iter()
            .try_fold(0u64, |sum, &bin| sum.checked_add(bin))
            .ok_or_else(|| format!("{name}'s bins overflow"))?;
        if total != self.count {
            return Err(format!("{name}'s bins do not add up to its count"));
        }
        if self.count == 0 {
            return Ok(());
        }
        // Merging reads bins `min_key - offset ..= max_key - offset`.
        let low = i64::from(self.min_key) - i64::from(self.offset);
        let high = i64::from(self.max_key) - i64::from(self.offset);
        if low < 0 || low > high || high >= self.bins.len() as i64 {
            return Err(format!("{name}'s key range lies outside its bins"));
        }
        let inside: u64 = self.bins[low as usize..=high as usize].iter().sum();
        if inside != self.count {
            return Err(format!("{name} has counts outside its key range"));
        }
        Ok(())
    }
}

/// Checks a sketch's JSON form; returns how many requests it holds.
pub(crate) fn check_value(value: &Value) -> Result<u64, String> {
    if value.get("config") != Some(&*DEFAULT_CONFIG) {
        return Err(
            "the sketch must use the default DDSketch configuration (1% relative accuracy, 2048 bins)"
                .into(),
        );
    }
    let shape: Shape = Shape::deserialize(value).map_err(|e| format!("not a DDSketch: {e}"))?;
    let max_bins = DEFAULT_CONFIG
        .get("max_num_bins")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    shape.store.check(max_bins, "the positive store")?;
    shape.negative_store.check(max_bins, "the negative store")?;
    let count = shape
        .store
        .count
        .checked_add(shape.negative_store.count)
        .and_then(|c| c.checked_add(shape.zero_count))
        .filter(|&c| c <= MAX_SKETCH_COUNT)
        .ok_or_else(|| format!("the sketch holds more than {MAX_SKETCH_COUNT} values"))?;
    if count > 0 {
        let sane = |x: f64| x.is_finite() && x.abs() <= MAX_MAGNITUDE;
        if !(sane(shape.min) && sane(shape.max) && sane(shape.sum)) || shape.min > shape.max {
            return Err("the sketch's min, max or sum is out of range".into());
        }
    }
    Ok(count)
}

/// Checks a sketch; returns how many requests it holds.
pub(crate) fn check(sketch: &LatencySketch) -> Result<u64, String> {
    let value = serde_json::to_value(sketch).map_err(|e| format!("not a DDSketch: {e}"))?;
    check_value(&value)
}

/// Reads a stored sketch, refusing one that fails [`check_value`].
pub(crate) fn parse_stored(text: &str) -> Result<LatencySketch, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    check_value(&value)?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Folds `other` into `into`. Both must have passed [`check`]; a merge that would exceed
/// [`MAX_SKETCH_COUNT`] is refused rather than allowed to overflow.
pub(crate) fn merge(into: &mut LatencySketch, other: &LatencySketch) -> Result<(), String> {
    if into.count().saturating_add(other.count()) > MAX_SKETCH_COUNT {
        return Err(format!(
            "merged latency sketches would hold more than {MAX_SKETCH_COUNT} values"
        ));
    }
    into.0
        .merge(&other.0)
        .map_err(|e| format!("cannot merge latency sketches: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch(values: &[f64]) -> LatencySketch {
        let mut sketch = LatencySketch::default();
        for &value in values {
            sketch.0.add(value);
        }
        sketch
    }

    #[test]
    fn real_sketches_pass_and_merge() {
        let mut a = sketch(&[1.0, 2.0, 300.0]);
        let b = sketch(&[0.0, 5_000.0]);
        assert_eq!(check(&a), Ok(3));
        assert_eq!(check(&b), Ok(2));
        merge(&mut a, &b).unwrap();
        assert_eq!(check(&a), Ok(5));
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(parse_stored(&text).unwrap().count(), 5);
    }

    #[test]
    fn crafted_sketches_are_refused() {
        let good = serde_json::to_value(sketch(&[10.0, 20.0])).unwrap();
        let tamper = |edit: &dyn Fn(&mut Value)| {
            let mut value = good.clone();
            edit(&mut value);
            check_value(&value)
        };
        assert!(tamper(&|v| v["store"]["max_key"] = 100_000.into()).is_err());
        assert!(tamper(&|v| v["store"]["offset"] = (-5_000_000).into()).is_err());
        assert!(tamper(&|v| v["store"]["count"] = 3.into()).is_err());
        assert!(tamper(&|v| v["store"]["bins"] = serde_json::json!([u64::MAX, 1])).is_err());
        assert!(tamper(&|v| v["store"]["bin_limit"] = 1_000_000.into()).is_err());
        assert!(tamper(&|v| v["config"]["gamma"] = 1.5.into()).is_err());
        assert!(tamper(&|v| v["min"] = 1e300.into()).is_err());
        assert!(tamper(&|v| v["zero_count"] = u64::MAX.into()).is_err());
        assert!(tamper(&|v| v["store"] = Value::Null).is_err());
        assert!(check_value(&good).is_ok());
    }
}
