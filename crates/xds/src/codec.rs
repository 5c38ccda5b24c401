//! The protobuf codec of both services: prost's, with the encode buffer sized for responses of
//! bounded size.
//!
//! A gRPC stream keeps its encode buffer for as long as it lives, at the size of the largest
//! run of messages it ever encoded at once. tonic's default starts at 8 KiB, batches messages
//! up to 32 KiB and grows by doubling, so a stream that carried a full push sat at 128 KiB
//! afterwards: 128 MB for a thousand idle proxies. Here every message is flushed on its own
//! and the buffer starts large enough for the largest response the server builds
//! ([`crate::server`] cuts responses at [`MAX_MESSAGE_BYTES`]), so it never grows.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// The largest response the server builds, encoded, and so the encode buffer's size.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// Encode buffer: one response, plus gRPC's 5-byte message header.
const ENCODE_BUFFER: usize = MAX_MESSAGE_BYTES + 64;

pub struct XdsCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for XdsCodec<T, U> {
    fn default() -> Self {
        XdsCodec(PhantomData)
    }
}

impl<T, U> Codec for XdsCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        // A yield threshold of one byte: each message is handed to h2 as it is encoded, never
        // batched with the next in a buffer twice the size.
        ProstEncoder::new(BufferSettings::new(ENCODE_BUFFER, 1))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}
