//! HTTP/1.1 + HTTP/2 serving on pingora (being written).
