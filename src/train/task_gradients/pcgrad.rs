//! PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS
//! 2020): where two tasks' gradients on the shared weights conflict (a
//! negative dot product), the one is projected onto the normal plane of the
//! other before they are summed. Gradients that agree are summed as they are.

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};

/// The sum of `gradients` (one flat vector per task, all of one length), each
/// first projected off every other task's original gradient it conflicts with,
/// in the order `orders[i]` lists them for task `i`; and how many projections
/// were made.
pub fn project_conflicts<B: Backend>(gradients: &[Tensor<B, 1>], orders: &[Vec<usize>]) -> (Tensor<B, 1>, usize) {
    let dot = |a: &Tensor<B, 1>, b: &Tensor<B, 1>| (a.clone() * b.clone()).sum().into_scalar().elem::<f64>();
    let squared_norms: Vec<f64> = gradients.iter().map(|g| dot(g, g)).collect();
    let mut projections = 0;
    let mut total: Option<Tensor<B, 1>> = None;
    for (i, gradient) in gradients.iter().enumerate() {
        let mut projected = gradient.clone();
        for &j in orders[i].iter().filter(|&&j| j != i && squared_norms[j] > 0.0) {
            let agreement = dot(&projected, &gradients[j]);
            if agreement < 0.0 {
                projected = projected - gradients[j].clone().mul_scalar(agreement / squared_norms[j]);
                projections += 1;
            }
        }
        total = Some(match total {
            Some(sum) => sum + projected,
            None => projected,
        });
    }
    (total.expect("one task's gradient or more"), projections)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn vector(values: &[f32]) -> Tensor<Flex, 1> {
        Tensor::from_floats(values, &Default::default())
    }

    fn values(t: Tensor<Flex, 1>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn conflicting_gradients_lose_the_part_along_each_other() {
        // The paper's two-task picture, by hand: g1 = (1, 0), g2 = (-1, 1) conflict (g1·g2 = -1).
        // g1' = g1 - (-1/2) g2 = (0.5, 0.5); g2' = g2 - (-1/1) g1 = (0, 1); sum (0.5, 1.5).
        let (sum, projections) = project_conflicts(&[vector(&[1.0, 0.0]), vector(&[-1.0, 1.0])], &[vec![1], vec![0]]);
        assert_eq!(projections, 2);
        assert!(close(&values(sum), &[0.5, 1.5]));
        // Neither projected gradient opposes the other task's any more.
        let g1p = [0.5f32, 0.5];
        assert!(g1p[0] * -1.0 + g1p[1] * 1.0 >= 0.0);
    }

    #[test]
    fn agreeing_or_zero_gradients_are_summed_as_they_are() {
        let (sum, projections) = project_conflicts(&[vector(&[1.0, 2.0]), vector(&[0.5, -0.1]), vector(&[0.0, 0.0])], &[vec![1, 2], vec![0, 2], vec![0, 1]]);
        assert_eq!(projections, 0);
        assert!(close(&values(sum), &[1.5, 1.9]));
        let (one, _) = project_conflicts(&[vector(&[3.0, -4.0])], &[vec![]]);
        assert!(close(&values(one), &[3.0, -4.0]));
    }

    #[test]
    fn with_three_tasks_each_is_projected_off_the_originals_in_its_order() {
        let g = [[1.0f64, 0.0, 0.0], [-1.0, 1.0, 0.0], [-1.0, -1.0, 1.0]];
        let orders = vec![vec![2, 1], vec![0, 2], vec![1, 0]];
        // By hand, in f64: each projection against the original other gradient.
        let dot = |a: &[f64; 3], b: &[f64; 3]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mut expected = [0.0f64; 3];
        let mut count = 0;
        for (i, order) in orders.iter().enumerate() {
            let mut p = g[i];
            for &j in order {
                let d = dot(&p, &g[j]);
                if d < 0.0 {
                    let n = dot(&g[j], &g[j]);
                    for k in 0..3 {
                        p[k] -= d / n * g[j][k];
                    }
                    count += 1;
                }
            }
            for k in 0..3 {
                expected[k] += p[k];
            }
        }
        let tensors: Vec<_> = g.iter().map(|v| vector(&v.map(|x| x as f32))).collect();
        let (sum, projections) = project_conflicts(&tensors, &orders);
        assert_eq!(projections, count);
        assert!(close(&values(sum), &expected.map(|x| x as f32)), "{expected:?}");
    }
}
