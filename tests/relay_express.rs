//! The express lane (`relay::conn::express`): a quiet connection leaves its
//! task for a lane thread and comes back. Its own test binary: the count of
//! connections in the lanes is per process.

mod common;
use common::*;
use flatline::frame::encode_frame;
use flatline::relay::conn::riding;
use std::io::Read;
use std::time::Instant;
use tokio::io::AsyncWriteExt;

/// Wait (bounded) until the lanes drive `n` connections.
fn until_riding(n: usize) {
    let end = Instant::now() + T;
    while riding() != n {
        assert!(Instant::now() < end, "{} riding, not {n}", riding());
        std::thread::yield_now();
    }
}

#[test]
fn a_riding_connection_stays_byte_exact_and_closes_with_its_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (relay, client, server) = rt.block_on(async {
        let (server_l, addr) = listener().await;
        let relay = relay_to_addr(addr).await;
        let (client, server) = raw_pair(&relay, &server_l).await;
        (relay, client, server)
    });
    // Open and quiet: it rides.
    until_riding(1);
    let (mut client, mut server) = rt.block_on(async move {
        let (mut client, mut server) = (client, server);
        let f = encode_frame(1, true, b"hello", Some([1, 2, 3, 4]));
        client.write_all(&f).await.unwrap();
        assert_eq!(read_exact(&mut server, f.len()).await, f);
        // 4 MiB the server does not read at first: the relay's writes
        // toward it fill its socket, the rest waits in the pipe's queue
        // and goes out as the server reads.
        let big = encode_frame(2, true, &vec![7; 4 << 20], Some([9, 8, 7, 6]));
        let writer = {
            let big = big.clone();
            tokio::spawn(async move {
                client.write_all(&big).await.unwrap();
                client
            })
        };
        assert_eq!(read_exact(&mut server, big.len()).await, big);
        let mut client = writer.await.unwrap();
        let g = encode_frame(2, true, &[5; 300], None);
        server.write_all(&g).await.unwrap();
        assert_eq!(read_exact(&mut client, g.len()).await, g);
        (client.into_std().unwrap(), server.into_std().unwrap())
    });
    until_riding(1);
    // The runtime goes without the relay being stopped: the connection's
    // task is dropped while its connection rides, and the lane closes it.
    std::mem::forget(relay);
    drop(rt);
    until_riding(0);
    for s in [&mut client, &mut server] {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap(), 0, "EOF");
    }
}
