//! Median and spread of a figure over the rounds of `bench compare`.

/// The median and the extremes of a set of rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub minimum: f64,
    pub maximum: f64,
    pub count: usize,
}

impl Summary {
    /// `None` for no value (a figure that was never measured has no summary).
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[middle]
        } else {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        };
        Some(Summary {
            median,
            minimum: sorted[0],
            maximum: sorted[sorted.len() - 1],
            count: sorted.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value() {
        let summary = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(summary.median, 2.0);
        assert_eq!(
            (summary.minimum, summary.maximum, summary.count),
            (1.0, 3.0, 3)
        );
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let summary = Summary::of(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(summary.median, 3.0);
        assert_eq!((summary.minimum, summary.maximum), (1.0, 10.0));
    }

    #[test]
    fn no_values_no_summary() {
        assert_eq!(Summary::of(&[]), None);
    }
}
