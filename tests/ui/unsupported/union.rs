use safejax::SafeParams;

#[derive(SafeParams)]
union Bits {
    f: f32,
    i: i32,
}

fn main() {}
