fn main() {
    println!("supervm: under construction");
}
