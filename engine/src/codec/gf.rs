//! GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D), and the matrices of the
//! systematic Reed-Solomon code built on it (docs/format.md, codec id 1).

use std::sync::OnceLock;

/// Log and exp tables of the field, and the full multiplication table.
pub(crate) struct Tables {
    pub log: [u8; 256],
    /// exp[i] = 2^i, doubled in length so that exp[log a + log b] needs no modulo.
    pub exp: [u8; 510],
    /// mul[a][b] = a·b.
    pub mul: Box<[[u8; 256]; 256]>,
    /// For the nibble kernels: low[c][i] = c·i and high[c][i] = c·(i << 4), i < 16.
    pub low: Box<[[u8; 16]; 256]>,
    pub high: Box<[[u8; 16]; 256]>,
}

pub(crate) fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut log = [0u8; 256];
        let mut exp = [0u8; 510];
        let mut b: usize = 1;
        for l in 0..255 {
            log[b] = l as u8;
            exp[l] = b as u8;
            exp[l + 255] = b as u8;
            b <<= 1;
            if b >= 256 {
                b = (b - 256) ^ 0x1D;
            }
        }
        let mut mul = Box::new([[0u8; 256]; 256]);
        for a in 1..256 {
            for c in 1..256 {
                mul[a][c] = exp[log[a] as usize + log[c] as usize];
            }
        }
        let mut low = Box::new([[0u8; 16]; 256]);
        let mut high = Box::new([[0u8; 16]; 256]);
        for c in 0..256 {
            for i in 0..16 {
                low[c][i] = mul[c][i];
                high[c][i] = mul[c][i << 4];
            }
        }
        Tables {
            log,
            exp,
            mul,
            low,
            high,
        }
    })
}

pub(crate) fn mul(a: u8, b: u8) -> u8 {
    tables().mul[a as usize][b as usize]
}

/// a^n (0^0 = 1).
fn pow(a: u8, n: usize) -> u8 {
    if n == 0 {
        return 1;
    }
    if a == 0 {
        return 0;
    }
    let t = tables();
    t.exp[(t.log[a as usize] as usize * n) % 255]
}

fn inv(a: u8) -> u8 {
    debug_assert!(a != 0);
    let t = tables();
    t.exp[(255 - t.log[a as usize] as usize) % 255]
}

/// A dense matrix over the field, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
}

impl Matrix {
    fn zero(rows: usize, cols: usize) -> Matrix {
        Matrix {
            rows,
            cols,
            data: vec![0; rows * cols],
        }
    }

    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    fn at(&self, r: usize, c: usize) -> u8 {
        self.data[r * self.cols + c]
    }

    fn set(&mut self, r: usize, c: usize, v: u8) {
        self.data[r * self.cols + c] = v;
    }

    /// V[r][c] = r^c.
    fn vandermonde(rows: usize, cols: usize) -> Matrix {
        let mut m = Matrix::zero(rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                m.set(r, c, pow(r as u8, c));
            }
        }
        m
    }

    fn multiply(&self, o: &Matrix) -> Matrix {
        debug_assert_eq!(self.cols, o.rows);
        let mut m = Matrix::zero(self.rows, o.cols);
        for r in 0..self.rows {
            for c in 0..o.cols {
                let mut v = 0u8;
                for i in 0..self.cols {
                    v ^= mul(self.at(r, i), o.at(i, c));
                }
                m.set(r, c, v);
            }
        }
        m
    }

    /// The rows `rows` of this matrix, in that order.
    pub fn select_rows(&self, rows: &[usize]) -> Matrix {
        let mut m = Matrix::zero(rows.len(), self.cols);
        for (i, &r) in rows.iter().enumerate() {
            m.data[i * self.cols..(i + 1) * self.cols].copy_from_slice(self.row(r));
        }
        m
    }

    /// The inverse of a square matrix by Gauss-Jordan elimination; None if it is singular.
    pub fn invert(&self) -> Option<Matrix> {
        let n = self.rows;
        debug_assert_eq!(n, self.cols);
        let mut a = self.clone();
        let mut inv_m = Matrix::zero(n, n);
        for i in 0..n {
            inv_m.set(i, i, 1);
        }
        for col in 0..n {
            let pivot = (col..n).find(|&r| a.at(r, col) != 0)?;
            if pivot != col {
                for c in 0..n {
                    a.data.swap(pivot * n + c, col * n + c);
                    inv_m.data.swap(pivot * n + c, col * n + c);
                }
            }
            let scale = inv(a.at(col, col));
            for c in 0..n {
                a.set(col, c, mul(a.at(col, c), scale));
                inv_m.set(col, c, mul(inv_m.at(col, c), scale));
            }
            for r in 0..n {
                let f = a.at(r, col);
                if r == col || f == 0 {
                    continue;
                }
                for c in 0..n {
                    a.set(r, c, a.at(r, c) ^ mul(f, a.at(col, c)));
                    inv_m.set(r, c, inv_m.at(r, c) ^ mul(f, inv_m.at(col, c)));
                }
            }
        }
        Some(inv_m)
    }
}

/// The systematic encoding matrix of RS(k, m): Vandermonde(k+m, k) · inverse(its top k×k).
/// Its top k rows are the identity; row k+i gives parity shard i.
pub(crate) fn encoding_matrix(k: usize, m: usize) -> Option<Matrix> {
    let v = Matrix::vandermonde(k + m, k);
    let top: Vec<usize> = (0..k).collect();
    let top_inv = v.select_rows(&top).invert()?;
    Some(v.multiply(&top_inv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_is_a_field() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
            assert_eq!(mul(a, 1), a);
            assert_eq!(mul(a, 0), 0);
        }
        // 2 generates: 2^8 = 0x1D under 0x11D.
        assert_eq!(pow(2, 8), 0x1D);
    }

    #[test]
    fn the_encoding_matrix_is_systematic_and_matches_the_frozen_rows() {
        let e = encoding_matrix(2, 1).unwrap();
        assert_eq!(e.data, vec![1, 0, 0, 1, 3, 2]);
        for (k, m) in [(4, 2), (10, 4), (1, 3), (17, 3)] {
            let e = encoding_matrix(k, m).unwrap();
            for r in 0..k {
                for c in 0..k {
                    assert_eq!(e.at(r, c), u8::from(r == c));
                }
            }
            // Any k rows invert (the MDS property), spot-checked.
            let rows: Vec<usize> = (m..m + k).collect();
            assert!(e.select_rows(&rows).invert().is_some());
        }
    }
}
