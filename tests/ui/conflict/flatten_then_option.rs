use ndarray::Array2;
use safejax::SafeParams;

#[derive(SafeParams)]
struct Net(#[safejax(flatten)] Vec<Array2<f32>>, Option<Array2<f32>>);

fn main() {
    let _ = Net::from_bytes(&[]);
}
