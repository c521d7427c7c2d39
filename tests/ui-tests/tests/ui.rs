//! Compile-fail cases of `#[derive(SafeParams)]` (`tests/ui/<category>/*.rs`, each with the
//! `.stderr` a user should see), and cases that must compile.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("../ui/**/*.rs");
    cases.pass("pass/*.rs");
}
