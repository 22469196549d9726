//! Helpers for the integration tests, each in a module of its own.

pub mod dbus_node;
