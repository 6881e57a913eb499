//! Receive Flow Deliver: which core owns a packet, and local ports that name their owner core.
