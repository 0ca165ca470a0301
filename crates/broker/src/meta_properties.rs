//! meta.properties (in progress).
