//! Request-response codec for ipm payloads: one versioned CBOR envelope per stream,
//! read with a hard size limit before anything is decoded.

use std::{io, marker::PhantomData};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use ipm_protocol::{decode, encode, Payload};

/// Encodes requests `Req` and responses `Resp`, refusing anything over the given sizes.
#[derive(Debug)]
pub struct CborCodec<Req, Resp> {
    max_request: usize,
    max_response: usize,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> CborCodec<Req, Resp> {
    /// A codec accepting requests of at most `max_request` and responses of at most
    /// `max_response` bytes.
    pub fn new(max_request: usize, max_response: usize) -> Self {
        Self {
            max_request,
            max_response,
            _types: PhantomData,
        }
    }
}

impl<Req, Resp> Clone for CborCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self::new(self.max_request, self.max_response)
    }
}

/// Reads the whole stream, failing as soon as it exceeds `max` bytes.
async fn read_limited<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message larger than {max} bytes"),
        ));
    }
    Ok(buf)
}

fn decode_limited<T: Payload>(bytes: &[u8], max: usize) -> io::Result<T> {
    decode(bytes, max).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl<Req, Resp> libp2p::request_response::Codec for CborCodec<Req, Resp>
where
    Req: Payload + Send,
    Resp: Payload + Send,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_limited(io, self.max_request).await?;
        decode_limited(&bytes, self.max_request)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_limited(io, self.max_response).await?;
        decode_limited(&bytes, self.max_response)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&encode(&req)).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&encode(&res)).await?;
        io.close().await
    }
}
