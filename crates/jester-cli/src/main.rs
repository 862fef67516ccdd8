fn main() {
    println!("{}", tch::Cuda::is_available());
    let t = tch::Tensor::from_slice(&[1f32, 2.]);
    t.print();
}
