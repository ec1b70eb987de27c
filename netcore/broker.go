package netcore

// A Broker carries room messages and broadcasts between sockmon nodes. The
// node always delivers to its own members first (the hub and FanOut); the
// Broker then hands the same message to the other nodes, which deliver it
// to theirs through the Deliver function the protocol gives the Broker. The
// default, LocalBroker, is the single-node case: it carries nothing, and
// costs the publish path one interface call.
//
// Rules for implementations:
//   - Subscribe and Unsubscribe are called by the hub under its room lock,
//     in the order the room gains its first member and loses its last, so
//     they must only record the wish and return at once (no I/O, no lock
//     other than a leaf).
//   - Publish is called on an event loop after local delivery: it must not
//     block or wait for the network, and must copy what it keeps (room and
//     payload are borrowed for the call). A message it cannot carry is
//     dropped and counted.
type Broker interface {
	// Subscribe says the node now has members of room.
	Subscribe(room string)
	// Unsubscribe says the node's last member of room left.
	Unsubscribe(room string)
	// Publish sends payload (the message as clients receive it, a JSON
	// text) to the members of room on the other nodes, or to every client
	// of the other nodes when room is empty (the protocol's publishes always
	// name a room; an admin broadcast crosses nodes as a cluster command).
	Publish(room, payload []byte)
}

// Deliver writes a message that came from another node to this node's
// members of room (every client of the protocol path when room is empty),
// framed once, and returns how many took it. payload is valid only during
// the call.
type Deliver func(room string, payload []byte) int

// LocalBroker is the in-process Broker: one node, nothing to carry. Its
// methods do nothing.
type LocalBroker struct{}

var _ Broker = LocalBroker{}

func (LocalBroker) Subscribe(string)    {}
func (LocalBroker) Unsubscribe(string)  {}
func (LocalBroker) Publish(_, _ []byte) {}
