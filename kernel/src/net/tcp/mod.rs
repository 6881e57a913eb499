//! TCP (RFC 9293): listeners, connections, timers; one instance per core.
