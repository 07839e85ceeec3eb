//! Wire frames, every message type in both directions (coordinator ↔ edge,
//! edge ↔ edge), and what the receivers decode out of them.

use std::fmt::Debug;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use protocol::frame_io::read_frame;
use protocol::mesh::{PeerMessage, PeerRequest};
use protocol::wire::{
    decode_frame, decode_header, encode_frame, CoordinatorMessage, EdgeReport, EdgeRequest,
    FrameError, HEADER_LEN, MAX_CONTROL_FRAME_BYTES, MAX_FRAME_BYTES,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bytes::pick;

/// The first byte picks the message type (and the size limit its reader
/// uses); the rest is one frame as it arrives on a stream.
pub fn frames(data: &[u8]) {
    let (which, frame) = pick(data);
    let big = MAX_FRAME_BYTES;
    let small = MAX_CONTROL_FRAME_BYTES;
    match which % 6 {
        0 => one::<EdgeRequest>(frame, protocol::wire::MAX_REQUEST_FRAME_BYTES, edge_request),
        1 => one::<CoordinatorMessage>(frame, big, coordinator_message),
        2 => one::<EdgeReport>(frame, small, |_| {}),
        3 => one::<PeerRequest>(frame, small, |_| {}),
        4 => one::<PeerMessage>(frame, big, peer_message),
        _ => one::<CoordinatorMessage>(frame, small, coordinator_message),
    }
}

/// A frame decodes, or is refused with an error; what decodes re-encodes
/// to a frame that decodes to the same message, and encoding is a fixed
/// point from there on. (The bytes themselves need not match: bincode
/// accepts a varint written longer than it has to be.) The stream reader
/// agrees with the slice decoder.
fn one<T>(frame: &[u8], max: usize, then: fn(&T))
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let decoded = decode_frame::<T>(frame, max);
    if let Some(header) = frame.get(..HEADER_LEN) {
        let header: [u8; HEADER_LEN] = header.try_into().expect("sliced to the length");
        if let Ok(body) = decode_header(header, max) {
            assert!(body <= max, "a header passed with a body of {body} > {max}");
        }
    }
    let mut reader = frame;
    let streamed = ready(read_frame::<T, _>(&mut reader, max));
    match (&decoded, &streamed) {
        (Ok(a), Ok(Some(b))) => assert_eq!(a, b, "the stream reader decoded otherwise"),
        (Ok(_), other) => panic!("the slice decoded, the stream reader said {other:?}"),
        // A longer stream may hold a valid first frame; an empty one is
        // a clean end of stream.
        (Err(_), _) => {}
    }
    if let Ok(msg) = decoded {
        let bytes = encode_frame(&msg).expect("a decoded message encodes");
        let again: T = decode_frame(&bytes, usize::MAX).expect("an encoded message decodes");
        assert_eq!(again, msg, "decode(encode(m)) != m");
        assert_eq!(
            encode_frame(&again).unwrap(),
            bytes,
            "encoding is not a fixed point"
        );
        then(&msg);
    } else if let Err(e) = decoded {
        assert!(
            !matches!(e, FrameError::Io(_)),
            "a slice cannot fail with an I/O error: {e}"
        );
    }
}

/// Reading from a slice never waits: one poll finishes the future.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("reading a slice waited"),
    }
}

/// What the coordinator checks after decoding an edge's request.
fn edge_request(msg: &EdgeRequest) {
    match msg {
        EdgeRequest::RequestLogs(records) => {
            for r in records {
                let _ = r.validate();
            }
        }
        EdgeRequest::Errors(reports) => {
            for r in reports {
                let _ = r.validate();
            }
        }
        EdgeRequest::Analytics(bytes) => crate::records::analytics(bytes),
        EdgeRequest::Join(join) => {
            crate::mesh::join_token(join.token.as_bytes());
        }
        _ => {}
    }
}

/// What an edge decodes out of a coordinator's message.
fn coordinator_message(msg: &CoordinatorMessage) {
    match msg {
        CoordinatorMessage::Batches(batches) => crate::config::check_batches(batches),
        CoordinatorMessage::SnapshotPage(page) => crate::config::check_page(page),
        CoordinatorMessage::Manifest(bytes) => crate::manifest::canonical_bytes(bytes),
        CoordinatorMessage::Peers(peers) => {
            for p in peers {
                let _ = p.is_valid();
            }
        }
        _ => {}
    }
}

fn peer_message(msg: &PeerMessage) {
    match msg {
        PeerMessage::Batches(batches) => crate::config::check_batches(batches),
        PeerMessage::Manifest(bytes) => crate::manifest::canonical_bytes(bytes),
        _ => {}
    }
}
