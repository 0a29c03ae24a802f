//! The reference peers: the demo server and the careful demo client.
