//! The socket API: handles instead of files, non-blocking calls with readiness, and an async face.
