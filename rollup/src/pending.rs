//! Deltas waiting to be flushed, by the seq range of the rows they cover,
//! and the plan that brings the rollups from the stored watermark to the
//! journal's head: the deltas that continue the watermark exactly, and
//! folds straight from the journal for every range no delta covers (rows
//! another collector appended, messages dropped, rows committed before a
//! restart). Pure, so every case is unit-tested without a database.

use std::collections::BTreeMap;

use crate::delta::Delta;

/// One step of a flush, in seq order.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Add this delta (rows `from..=to`, as committed).
    Apply { from: i64, to: i64, delta: Delta },
    /// Aggregate rows `from..=to` from the journal itself.
    Fold { from: i64, to: i64 },
}

/// Deltas by the first seq they cover; ranges never overlap within one
/// collector (one appender per database), and adjacent ones are merged.
#[derive(Debug, Default)]
pub struct Pending {
    segments: BTreeMap<i64, (i64, Delta)>,
}

/// What a flush does, and where it leaves the watermark.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub watermark: i64,
    /// Rows left between the new watermark and the head (the fold limit
    /// was reached): flush again soon.
    pub behind: bool,
}

impl Pending {
    /// Rows `first..=last` were committed and add `delta`.
    pub fn push(&mut self, first: i64, last: i64, delta: Delta) {
        if last < first {
            return;
        }
        if let Some((_, (prev_last, prev))) = self.segments.range_mut(..first).next_back() {
            if *prev_last + 1 == first {
                prev.merge(delta);
                *prev_last = last;
                return;
            }
        }
        self.segments.insert(first, (last, delta));
    }

    /// Adds back what a failed or partial flush did not use.
    pub fn restore(&mut self, other: Pending) {
        for (first, (last, delta)) in other.segments {
            self.push(first, last, delta);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Forgets the oldest segment (memory bound while the database is
    /// down): its rows will be folded from the journal instead.
    pub fn forget_oldest(&mut self) {
        self.segments.pop_first();
    }

    /// Takes every segment it can use to go from `watermark` towards `head`
    /// (the journal's last seq as this transaction sees it), folding at most
    /// `max_fold` rows from the journal; leaves the rest pending.
    pub fn plan(&mut self, watermark: i64, head: i64, max_fold: i64) -> Plan {
        let mut steps: Vec<Step> = Vec::new();
        let mut cursor = watermark;
        let mut fold_left = max_fold.max(1);
        let mut behind = false;
        // Already in the rollups (another collector, or a fold, got there first).
        self.segments.retain(|_, (last, _)| *last > watermark);
        let firsts: Vec<i64> = self.segments.keys().copied().collect();
        for first in firsts {
            let last = self.segments[&first].0;
            if last > head {
                // Not visible yet: cannot be; keep it for a later flush.
                break;
            }
            if first > cursor + 1 {
                let to = (first - 1).min(cursor + fold_left);
                fold(&mut steps, cursor + 1, to);
                fold_left -= to - cursor;
                cursor = to;
                if cursor < first - 1 {
                    behind = true;
                    break;
                }
            }
            let (last, delta) = self.segments.remove(&first).expect("listed above");
            if first == cursor + 1 {
                apply(&mut steps, first, last, delta);
            } else {
                // Straddles the watermark: part of it is in already, and a
                // delta cannot be cut, so its rows are folded instead.
                let to = last.min(cursor + fold_left);
                fold(&mut steps, cursor + 1, to);
                fold_left -= to - cursor;
                if to < last {
                    cursor = to;
                    behind = true;
                    break;
                }
            }
            cursor = last;
        }
        if !behind && cursor < head {
            let to = head.min(cursor + fold_left);
            fold(&mut steps, cursor + 1, to);
            behind = to < head;
            cursor = to;
        }
        Plan {
            steps,
            watermark: cursor,
            behind,
        }
    }
}

fn fold(steps: &mut Vec<Step>, from: i64, to: i64) {
    if to < from {
        return;
    }
    if let Some(Step::Fold { to: prev_to, .. }) = steps.last_mut() {
        if *prev_to + 1 == from {
            *prev_to = to;
            return;
        }
    }
    steps.push(Step::Fold { from, to });
}

fn apply(steps: &mut Vec<Step>, from: i64, to: i64, delta: Delta) {
    if let Some(Step::Apply {
        to: prev_to,
        delta: prev,
        ..
    }) = steps.last_mut()
    {
        if *prev_to + 1 == from {
            prev.merge(delta);
            *prev_to = to;
            return;
        }
    }
    steps.push(Step::Apply { from, to, delta });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A delta that says which rows it covers, so plans can be compared.
    fn d(first: i64, last: i64) -> Delta {
        Delta {
            rows: (last - first + 1) as u64,
            ..Delta::default()
        }
    }

    fn ranges(plan: &Plan) -> Vec<(&'static str, i64, i64)> {
        plan.steps
            .iter()
            .map(|s| match s {
                Step::Apply { from, to, .. } => ("apply", *from, *to),
                Step::Fold { from, to } => ("fold", *from, *to),
            })
            .collect()
    }

    #[test]
    fn contiguous_deltas_are_applied_as_one() {
        let mut p = Pending::default();
        p.push(1, 10, d(1, 10));
        p.push(11, 20, d(11, 20));
        assert_eq!(p.len(), 1, "adjacent segments merge");
        let plan = p.plan(0, 20, 1000);
        assert_eq!(ranges(&plan), [("apply", 1, 20)]);
        assert_eq!((plan.watermark, plan.behind), (20, false));
        assert!(p.is_empty());
    }

    #[test]
    fn holes_are_folded_from_the_journal() {
        let mut p = Pending::default();
        p.push(11, 20, d(11, 20));
        p.push(31, 40, d(31, 40));
        let plan = p.plan(5, 45, 1000);
        assert_eq!(
            ranges(&plan),
            [
                ("fold", 6, 10),
                ("apply", 11, 20),
                ("fold", 21, 30),
                ("apply", 31, 40),
                ("fold", 41, 45)
            ]
        );
        assert_eq!(plan.watermark, 45);
    }

    #[test]
    fn a_restart_with_nothing_pending_catches_up_in_bounded_folds() {
        let mut p = Pending::default();
        let plan = p.plan(100, 1000, 300);
        assert_eq!(ranges(&plan), [("fold", 101, 400)]);
        assert_eq!((plan.watermark, plan.behind), (400, true));
        let plan = p.plan(400, 1000, 1000);
        assert_eq!((plan.watermark, plan.behind), (1000, false));
    }

    #[test]
    fn segments_already_in_are_dropped_and_a_straddling_one_is_folded() {
        let mut p = Pending::default();
        p.push(1, 10, d(1, 10));
        p.push(21, 30, d(21, 30));
        // Another collector's flush took the watermark to 25.
        let plan = p.plan(25, 30, 1000);
        assert_eq!(ranges(&plan), [("fold", 26, 30)]);
        assert_eq!(plan.watermark, 30);
        assert!(p.is_empty());
    }

    #[test]
    fn the_fold_limit_stops_before_a_delta_it_cannot_reach() {
        let mut p = Pending::default();
        p.push(101, 110, d(101, 110));
        let plan = p.plan(0, 110, 50);
        assert_eq!(ranges(&plan), [("fold", 1, 50)]);
        assert_eq!((plan.watermark, plan.behind), (50, true));
        assert_eq!(p.len(), 1, "the delta waits for the next flush");
        let plan = p.plan(50, 110, 50);
        assert_eq!(ranges(&plan), [("fold", 51, 100), ("apply", 101, 110)]);
        assert_eq!((plan.watermark, plan.behind), (110, false));
    }

    #[test]
    fn nothing_to_do_leaves_the_watermark() {
        let mut p = Pending::default();
        let plan = p.plan(7, 7, 10);
        assert!(plan.steps.is_empty());
        assert_eq!((plan.watermark, plan.behind), (7, false));
    }

    #[test]
    fn restore_puts_unused_segments_back_in_order() {
        let mut p = Pending::default();
        p.push(21, 30, d(21, 30));
        let mut taken = Pending::default();
        taken.push(1, 10, d(1, 10));
        taken.push(11, 20, d(11, 20));
        p.restore(taken);
        let plan = p.plan(0, 30, 1000);
        assert_eq!(ranges(&plan), [("apply", 1, 30)]);
    }
}
