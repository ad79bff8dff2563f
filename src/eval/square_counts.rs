//! A square count matrix as it travels between processes (a server's scores
//! for the workbench): the accumulators' own fields, checked on arrival so
//! that counts that do not fill the matrix are an error, not a panic later.

use serde::Deserialize;

/// The most classes a received matrix may have (ADE20K has 150, a large
/// classification set a few thousand).
pub const MAX_CLASSES: usize = 1 << 14;

/// The fields of a `side × side` matrix, `side = num_classes + extra`.
#[derive(Deserialize)]
pub struct SquareCounts {
    pub num_classes: usize,
    pub counts: Vec<u64>,
}

impl SquareCounts {
    /// The fields, when `counts` fills the matrix exactly and its total fits a `u64`.
    pub fn checked(self, extra: usize) -> Result<(usize, Vec<u64>), String> {
        let Self { num_classes, counts } = self;
        if num_classes > MAX_CLASSES {
            return Err(format!("{num_classes} classes: more than {MAX_CLASSES}"));
        }
        let side = num_classes + extra;
        if counts.len() != side * side {
            return Err(format!("{} counts for {num_classes} classes: a {side} × {side} matrix has {}", counts.len(), side * side));
        }
        // Every sum the metrics take is then free of overflow.
        if counts.iter().try_fold(0u64, |sum, &c| sum.checked_add(c)).is_none() {
            return Err("the counts add up past 2^64".into());
        }
        Ok((num_classes, counts))
    }
}

#[cfg(test)]
mod tests {
    use crate::eval::cls::ClsMetrics;
    use crate::eval::det_confusion::DetConfusion;
    use crate::eval::ConfusionMatrix;

    #[test]
    fn a_received_matrix_must_fill_its_side_and_fit_a_u64() {
        let pixels = ConfusionMatrix::new(2);
        let text = serde_json::to_string(&pixels).unwrap();
        assert_eq!(serde_json::from_str::<ConfusionMatrix>(&text).unwrap(), pixels);
        for (json, said) in [
            (r#"{"num_classes":2,"counts":[1,2]}"#, "2 counts for 2 classes: a 3 × 3 matrix has 9"),
            (r#"{"num_classes":99999999,"counts":[]}"#, "more than"),
        ] {
            let error = serde_json::from_str::<ConfusionMatrix>(json).unwrap_err().to_string();
            assert!(error.contains(said), "{error}");
        }
        let overflow = r#"{"num_classes":1,"counts":[18446744073709551615,1,0,0]}"#;
        assert!(serde_json::from_str::<DetConfusion>(overflow).unwrap_err().to_string().contains("past 2^64"));
        let lying = r#"{"num_classes":1,"counts":[3],"top5_hits":4}"#;
        assert!(serde_json::from_str::<ClsMetrics>(lying).unwrap_err().to_string().contains("4 top-5 hits among 3 samples"));
        assert!(serde_json::from_str::<ClsMetrics>(r#"{"num_classes":1,"counts":[3],"top5_hits":3}"#).is_ok());
    }
}
