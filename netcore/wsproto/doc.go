// Package wsproto holds sockmon's RFC 6455 primitives on byte slices: frame
// headers, the opening handshake's request parser and responses, incremental
// UTF-8 validation and permessage-deflate (RFC 7692) without context
// takeover. It knows nothing of sockets, pollers or sockmon's JSON protocol:
// the engine (netcore) peeks bytes out of netpoll's buffers and hands them
// here, and the load generator and the tests' raw client encode their frames
// with the same code. Every parser has a fuzz target.
//
// Functions are safe for concurrent use. Parsers return slices into their
// input or copies as each doc comment says; Append functions append to dst
// and return the extended slice, allocating only when dst must grow.
package wsproto
