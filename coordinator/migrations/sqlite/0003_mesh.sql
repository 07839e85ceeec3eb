-- Where peers reach a node's QUIC endpoint (edge mesh).
ALTER TABLE nodes ADD COLUMN mesh_addr TEXT;
