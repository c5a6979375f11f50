package fragments

import "time"

// PutObserver is told of each fragment a PutMedia connection ingests (the
// web layer's metrics). Received is called from the connection's reader,
// Persisted from its persister: implementations must be quick and safe for
// concurrent use.
type PutObserver interface {
	// Received: the fragment is complete and acked RECEIVED.
	Received(FragmentStats)
	// Persisted: the fragment is durable and acked PERSISTED (streams
	// without retention never persist).
	Persisted(FragmentStats)
}

// FragmentStats describes one fragment as a PutMedia connection ingested it.
type FragmentStats struct {
	Number uint64
	Bytes  int64 // the Cluster as stored
	Frames int
	// Ingestion is the time from the arrival of the fragment's first byte
	// to the moment it was complete (the guide's FragmentIngestionLatency).
	Ingestion time.Duration
	// Persist is the time from the moment the fragment was complete to its
	// PERSISTED ack (FragmentPersistLatency); set for Persisted only.
	Persist time.Duration

	end time.Time // when the fragment was complete
}
