//! The relay: listener, handshake pass-through and the two pipes per connection.
