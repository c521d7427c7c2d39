//! Tensor leaves: ndarray arrays, plain scalars, and the dtype-erased [`Tensor`].

use std::borrow::Cow;

use ndarray::{Array, ArrayBase, Data, DataMut, Dimension};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::dtype::{DtypePolicy, Element, decode_vec, decoded};
use crate::error::{Error, ExpectedShape, LeafProblem, Result};
use crate::format::TensorRef;

/// A tensor as written: dtype, shape and little-endian bytes in row-major order.
///
/// Implemented by every leaf type; writing borrows the bytes where the layout allows.
pub trait Leaf {
    /// The safetensors dtype.
    fn dtype(&self) -> Dtype;
    /// The shape (empty for a scalar).
    fn shape(&self) -> Cow<'_, [usize]>;
    /// The little-endian bytes in row-major order.
    fn data(&self) -> Cow<'_, [u8]>;
    /// The length of [`Leaf::data`] in bytes, without producing the data.
    fn data_len(&self) -> usize;
}

/// A leaf that can be overwritten in place from a tensor of the file (`load_into`).
pub trait LeafMut {
    /// Checks, without changing anything, that `view` can be assigned.
    fn check(&self, view: &TensorView<'_>, policy: DtypePolicy) -> Result<(), LeafProblem>;
    /// Overwrites the leaf with `view`, which [`LeafMut::check`] accepted.
    fn assign(&mut self, view: &TensorView<'_>, policy: DtypePolicy);
}

/// Decodes a tensor view into an owned array of `T`, checking rank, dtype and values.
pub(crate) fn array_from_view<T: Element, D: Dimension>(
    view: &TensorView<'_>,
    policy: DtypePolicy,
) -> Result<Array<T, D>, LeafProblem> {
    check_rank::<D>(view.shape())?;
    let data = decode_vec::<T>(view.dtype(), view.data(), policy)?;
    array_of(view.shape(), data)
}

/// Reads a tensor of a file into an owned array of `T`, checking rank, dtype and values. When
/// the dtype is `T`'s, the bytes go straight from the file (or memory) into the array's buffer.
pub(crate) fn array_from<T: Element, D: Dimension>(
    tensor: &TensorRef<'_, '_>,
    policy: DtypePolicy,
) -> Result<Array<T, D>, LeafProblem> {
    let shape = tensor.shape();
    check_rank::<D>(shape)?;
    let unreadable = |e: Error| LeafProblem::Unreadable(e.to_string());
    if tensor.dtype() == T::DTYPE {
        let n = tensor.byte_len() / T::SIZE;
        if let Some(data) = T::filled_le(n, |bytes| tensor.read_into_uninit(bytes)) {
            return array_of(shape, data.map_err(unreadable)?);
        }
    }
    let bytes = tensor.bytes().map_err(unreadable)?;
    array_of(shape, decode_vec::<T>(tensor.dtype(), &bytes, policy)?)
}

fn check_rank<D: Dimension>(shape: &[usize]) -> Result<(), LeafProblem> {
    match D::NDIM {
        Some(rank) if rank != shape.len() => Err(LeafProblem::Shape {
            expected: ExpectedShape::Rank(rank),
            found: shape.to_vec(),
        }),
        _ => Ok(()),
    }
}

fn array_of<T: Element, D: Dimension>(
    shape: &[usize],
    data: Vec<T>,
) -> Result<Array<T, D>, LeafProblem> {
    // The shape straight into `D` (its rank was checked), not through `IxDyn` and a
    // conversion, which builds the shape and strides twice.
    if let Some(rank) = D::NDIM
        && rank != shape.len()
    {
        return Err(LeafProblem::Value(format!(
            "cannot build an array of rank {rank} from shape {shape:?}"
        )));
    }
    let mut dim = D::zeros(shape.len());
    dim.slice_mut().copy_from_slice(shape);
    Array::from_shape_vec(dim, data)
        .map_err(|e| LeafProblem::Value(format!("cannot build an array of shape {shape:?}: {e}")))
}

impl<S, T, D> Leaf for ArrayBase<S, D>
where
    S: Data<Elem = T>,
    T: Element,
    D: Dimension,
{
    fn dtype(&self) -> Dtype {
        T::DTYPE
    }

    fn shape(&self) -> Cow<'_, [usize]> {
        Cow::Borrowed(ArrayBase::shape(self))
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match self.as_slice() {
            Some(slice) => T::slice_le_bytes(slice),
            None => {
                // Not in standard layout (transposed, sliced): write the logical order.
                let mut out = Vec::with_capacity(self.len() * T::SIZE);
                self.iter().for_each(|x| x.extend_le(&mut out));
                Cow::Owned(out)
            }
        }
    }

    fn data_len(&self) -> usize {
        self.len() * T::SIZE
    }
}

impl<S, T, D> LeafMut for ArrayBase<S, D>
where
    S: DataMut<Elem = T>,
    T: Element,
    D: Dimension,
{
    fn check(&self, view: &TensorView<'_>, policy: DtypePolicy) -> Result<(), LeafProblem> {
        if view.shape() != ArrayBase::shape(self) {
            return Err(LeafProblem::Shape {
                expected: ExpectedShape::Exact(ArrayBase::shape(self).to_vec()),
                found: view.shape().to_vec(),
            });
        }
        T::check(view.dtype(), view.data(), policy)
    }

    fn assign(&mut self, view: &TensorView<'_>, _policy: DtypePolicy) {
        match self.as_slice_mut() {
            Some(slots) => T::decode_into(view.dtype(), view.data(), slots),
            None => {
                let values = decoded::<T>(view.dtype(), view.data());
                self.iter_mut().zip(values).for_each(|(slot, x)| *slot = x);
            }
        }
    }
}

macro_rules! scalar_leaf {
    ($($ty:ty),*) => {$(
        impl Leaf for $ty {
            fn dtype(&self) -> Dtype {
                <$ty as Element>::DTYPE
            }

            fn shape(&self) -> Cow<'_, [usize]> {
                Cow::Borrowed(&[])
            }

            fn data(&self) -> Cow<'_, [u8]> {
                <$ty as Element>::slice_le_bytes(std::slice::from_ref(self))
            }

            fn data_len(&self) -> usize {
                <$ty as Element>::SIZE
            }
        }

        impl LeafMut for $ty {
            fn check(&self, view: &TensorView<'_>, policy: DtypePolicy) -> Result<(), LeafProblem> {
                if !view.shape().is_empty() {
                    return Err(LeafProblem::Shape {
                        expected: ExpectedShape::Rank(0),
                        found: view.shape().to_vec(),
                    });
                }
                <$ty as Element>::check(view.dtype(), view.data(), policy)
            }

            fn assign(&mut self, view: &TensorView<'_>, _policy: DtypePolicy) {
                <$ty as Element>::decode_into(view.dtype(), view.data(), std::slice::from_mut(self));
            }
        }
    )*};
}

scalar_leaf!(
    f32,
    f64,
    half::f16,
    half::bf16,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    bool
);

/// A tensor of any safetensors dtype (F8 and sub-byte types included), kept exactly as the file
/// has it: dtype, shape and little-endian bytes. The leaf of the dynamic [`crate::tree`] API, and
/// a field type for values whose dtype is only known at run time.
///
/// ```
/// use ndarray::array;
/// use safejax_core::{Dtype, Tensor};
///
/// let t = Tensor::from_array(&array![[1.0f32, 2.0], [3.0, 4.0]]);
/// assert_eq!(t.dtype(), Dtype::F32);
/// assert_eq!(t.shape(), &[2, 2]);
/// let back: ndarray::Array2<f32> = t.to_array()?;
/// assert_eq!(back, array![[1.0, 2.0], [3.0, 4.0]]);
/// # Ok::<(), safejax_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Tensor {
    /// A tensor from its parts; the byte length must be the shape's element count times the
    /// dtype's size.
    ///
    /// ```
    /// use safejax_core::{Dtype, Tensor};
    /// assert!(Tensor::new(Dtype::I32, vec![2], vec![0; 8]).is_ok());
    /// assert!(Tensor::new(Dtype::I32, vec![2], vec![0; 7]).is_err());
    /// ```
    pub fn new(dtype: Dtype, shape: Vec<usize>, data: Vec<u8>) -> Result<Self> {
        let problem = match crate::format::byte_size(dtype, &shape) {
            Ok(len) if len == data.len() => return Ok(Tensor { dtype, shape, data }),
            Ok(len) => format!(
                "{} bytes do not hold a {dtype} tensor of shape {shape:?}, which needs {len}",
                data.len()
            ),
            Err(reason) => format!("a {dtype} tensor of shape {shape:?} {reason}"),
        };
        Err(Error::Tensor {
            key: String::new(),
            problem: LeafProblem::Value(problem),
        })
    }

    /// Reads a tensor of a file, its bytes straight into the new tensor's.
    pub fn from_ref(tensor: &TensorRef<'_, '_>) -> Result<Self> {
        let data = match tensor.memory() {
            Some(bytes) => bytes.to_vec(),
            None => {
                let mut data = vec![0; tensor.byte_len()];
                tensor.read_into(&mut data)?;
                data
            }
        };
        Ok(Tensor {
            dtype: tensor.dtype(),
            shape: tensor.shape().to_vec(),
            data,
        })
    }

    /// Copies a view of a file.
    pub fn from_view(view: &TensorView<'_>) -> Self {
        Tensor {
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            data: view.data().to_vec(),
        }
    }

    /// Copies an ndarray array (any layout) into a tensor.
    pub fn from_array<S, T, D>(array: &ArrayBase<S, D>) -> Self
    where
        S: Data<Elem = T>,
        T: Element,
        D: Dimension,
    {
        Tensor {
            dtype: T::DTYPE,
            shape: array.shape().to_vec(),
            data: Leaf::data(array).into_owned(),
        }
    }

    /// Converts to an owned ndarray array, checking dtype and rank.
    pub fn to_array<T: Element, D: Dimension>(&self) -> Result<Array<T, D>> {
        self.to_array_with(DtypePolicy::Exact)
    }

    /// Like [`Tensor::to_array`], converting between float dtypes if `policy` allows.
    pub fn to_array_with<T: Element, D: Dimension>(
        &self,
        policy: DtypePolicy,
    ) -> Result<Array<T, D>> {
        array_from_view(&self.view(), policy).map_err(|problem| Error::Tensor {
            key: String::new(),
            problem,
        })
    }

    /// A borrowed view, as the official crate's type.
    pub fn view(&self) -> TensorView<'_> {
        TensorView::new(self.dtype, self.shape.clone(), &self.data)
            .unwrap_or_else(|_| unreachable!("`Tensor` keeps data and shape consistent"))
    }

    /// The dtype.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The little-endian bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the bytes.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

impl Leaf for Tensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> Cow<'_, [usize]> {
        Cow::Borrowed(&self.shape)
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }

    fn data_len(&self) -> usize {
        self.data.len()
    }
}

impl LeafMut for Tensor {
    fn check(&self, view: &TensorView<'_>, _policy: DtypePolicy) -> Result<(), LeafProblem> {
        if view.dtype() != self.dtype {
            return Err(LeafProblem::Dtype {
                expected: self.dtype,
                found: view.dtype(),
            });
        }
        if view.shape() != self.shape.as_slice() {
            return Err(LeafProblem::Shape {
                expected: ExpectedShape::Exact(self.shape.clone()),
                found: view.shape().to_vec(),
            });
        }
        Ok(())
    }

    fn assign(&mut self, view: &TensorView<'_>, _policy: DtypePolicy) {
        self.data.clear();
        self.data.extend_from_slice(view.data());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn transposed_arrays_write_row_major() {
        let a = array![[1i32, 2, 3], [4, 5, 6]];
        let t = a.t();
        let bytes = Leaf::data(&t);
        let values: Vec<i32> = bytes
            .chunks_exact(4)
            .map(<i32 as Element>::read_le)
            .collect();
        assert_eq!(values, [1, 4, 2, 5, 3, 6]);
        let back: Array2<i32> = Tensor::from_array(&t)
            .to_array()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, t);
    }

    #[test]
    fn rank_and_dtype_are_checked() {
        let t = Tensor::from_array(&array![1.0f32, 2.0]);
        let err = t
            .to_array::<f32, ndarray::Ix2>()
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("tensor: expected rank 2, found shape [2]")
        );
        assert!(t.to_array::<f64, ndarray::Ix1>().is_err());
        assert!(
            t.to_array_with::<f64, ndarray::Ix1>(DtypePolicy::ConvertFloats)
                .is_ok()
        );
        assert!(t.to_array::<f32, ndarray::IxDyn>().is_ok());
    }
}
