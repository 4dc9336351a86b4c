package protocol

// The live event stream, GET /v1/events/stream (text/event-stream).
const (
	// StreamHelloEvent names the first message of a stream; its data is a
	// StreamHello.
	StreamHelloEvent = "hello"
	// StreamEvent names each event message; its data is an Event and its
	// id the event's Seq (what a reconnect sends back as Last-Event-ID).
	StreamEvent = "event"
	// MaxStreamEventIDs bounds the event ids one stream may filter on.
	MaxStreamEventIDs = 100
)

// StreamHello is the data of a stream's first message.
type StreamHello struct {
	ServerVersion string `json:"server_version"`
	// LastSeq is the newest event's Seq when the stream opened (0: none).
	LastSeq int64 `json:"last_seq"`
}
