package netcore

// MessageType is the type of a data message.
type MessageType uint8

// Data message types (the RFC 6455 opcodes).
const (
	TextMessage   MessageType = 1
	BinaryMessage MessageType = 2
)

func (t MessageType) String() string {
	switch t {
	case TextMessage:
		return "text"
	case BinaryMessage:
		return "binary"
	}
	return "unknown"
}

// Handler handles the complete messages of one connection.
//
// HandleMessage runs on the goroutine that reads the connection: calls for
// one connection are sequential, calls for different connections run
// concurrently. data is only valid until HandleMessage returns; copy what
// must be kept. Replies written with c.Reply go into the batch that is
// flushed once the frames read so far are handled.
//
// A returned *CloseError closes the connection with its code; any other
// error closes it with 1011.
type Handler interface {
	HandleMessage(c *Conn, mt MessageType, data []byte) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(c *Conn, mt MessageType, data []byte) error

// HandleMessage calls f.
func (f HandlerFunc) HandleMessage(c *Conn, mt MessageType, data []byte) error {
	return f(c, mt, data)
}

// EchoHandler echoes every message back verbatim, text and binary alike.
var EchoHandler Handler = HandlerFunc(func(c *Conn, mt MessageType, data []byte) error {
	return c.Reply(mt, data)
})
