//! Plain-old-data element types that can be copied to and from device buffers as bytes.
#![allow(unsafe_code)]

mod sealed {
    pub trait Sealed {}
}

/// An element type of a host slice that [`crate::device::Queue::upload`] and
/// [`crate::device::Queue::download`] accept: integers and fixed arrays of them (for
/// example a 32-byte digest `[u8; 32]` or a 4-limb field element `[u64; 4]`). Sealed: every
/// bit pattern of these types is valid and they have no padding.
pub trait Pod: sealed::Sealed + Copy + Send + Sync + 'static {}

macro_rules! pod {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Pod for $t {}
        impl<const N: usize> sealed::Sealed for [$t; N] {}
        impl<const N: usize> Pod for [$t; N] {}
    )*};
}
pod!(u8, u16, u32, u64, i32, i64);

/// The bytes of a slice of plain data.
pub fn as_bytes<T: Pod>(s: &[T]) -> &[u8] {
    // SAFETY: `T: Pod` is only implemented for integer types and arrays of them, which have
    // no padding, so every byte of the slice is initialised; the length is the exact byte
    // size of the slice and u8 has alignment 1.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

/// The bytes of a mutable slice of plain data.
pub fn as_bytes_mut<T: Pod>(s: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; in addition every bit pattern is a valid `T`, so writing
    // arbitrary bytes through the returned slice cannot create an invalid value.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}
