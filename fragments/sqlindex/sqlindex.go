// Package sqlindex is the embedded fragment index: SQLite through
// modernc.org/sqlite (pure Go). The SQL is plain enough to run on PostgreSQL.
//
// Durability: WAL journal with synchronous=FULL, so a committed transaction
// survives kill -9 and power loss; fragments are committed only after their
// payload is synced, so an index row never points at bytes that are not there.
package sqlindex

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/kvsgate/kvsgate/fragments"
	_ "modernc.org/sqlite" // the "sqlite" driver
)

const schema = `
CREATE TABLE IF NOT EXISTS streams (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL,
	arn TEXT NOT NULL,
	device_name TEXT NOT NULL DEFAULT '',
	media_type TEXT NOT NULL DEFAULT '',
	kms_key_id TEXT NOT NULL DEFAULT '',
	version TEXT NOT NULL,
	status TEXT NOT NULL,
	created_ns INTEGER NOT NULL,
	retention_hours INTEGER NOT NULL,
	tags TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS streams_name ON streams(name);
CREATE UNIQUE INDEX IF NOT EXISTS streams_arn ON streams(arn);
CREATE TABLE IF NOT EXISTS headers (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	stream_id INTEGER NOT NULL,
	timecode_scale INTEGER NOT NULL,
	tracks TEXT NOT NULL,
	raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	stream_id INTEGER NOT NULL,
	closed INTEGER NOT NULL DEFAULT 0,
	last_server_ns INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS segments_stream ON segments(stream_id, last_server_ns);
CREATE TABLE IF NOT EXISTS fragments (
	stream_id INTEGER NOT NULL,
	ordinal INTEGER NOT NULL,
	number INTEGER NOT NULL,
	producer_ns INTEGER NOT NULL,
	server_ns INTEGER NOT NULL,
	duration_ns INTEGER NOT NULL,
	size INTEGER NOT NULL,
	timecode INTEGER NOT NULL,
	segment_id INTEGER NOT NULL,
	offset INTEGER NOT NULL,
	header_id INTEGER NOT NULL,
	PRIMARY KEY (stream_id, ordinal)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fragments_server ON fragments(stream_id, server_ns, ordinal, number, producer_ns, duration_ns, size, timecode, segment_id, offset, header_id);
CREATE INDEX IF NOT EXISTS fragments_producer ON fragments(stream_id, producer_ns, ordinal, number, server_ns, duration_ns, size, timecode, segment_id, offset, header_id);
CREATE UNIQUE INDEX IF NOT EXISTS fragments_number ON fragments(number);
CREATE TABLE IF NOT EXISTS fragment_meta (
	stream_id INTEGER NOT NULL,
	ordinal INTEGER NOT NULL,
	meta BLOB NOT NULL,
	PRIMARY KEY (stream_id, ordinal)
) WITHOUT ROWID;
`

// Index implements fragments.Index on SQLite.
type Index struct {
	w *sql.DB // one connection: all writes are serialised
	r *sql.DB // readers (WAL lets them run beside the writer)
	// raw serves Fragments: see rawPool.
	raw *rawPool

	mu       sync.Mutex
	ordinals map[int64]int64 // stream id -> last committed ordinal

	bmu     sync.Mutex
	briefs  map[int64]*streamBriefs // by stream id (briefs.go)
	loads   sync.WaitGroup
	loadOne sync.Mutex
}

// Open opens (creating if needed) the index at path.
func Open(path string) (*Index, error) {
	dsn := func(extra string) string {
		return "file:" + url.PathEscape(path) + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(OFF)" + extra
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlindex: schema: %w", err)
	}
	r, err := sql.Open("sqlite", dsn("&_pragma=query_only(1)"))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	raw := newRawPool(path, 8)
	// Nothing writes a segment any more after a restart.
	if _, err := w.Exec(`UPDATE segments SET closed = 1 WHERE closed = 0`); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	x := &Index{w: w, r: r, raw: raw, ordinals: map[int64]int64{}, briefs: map[int64]*streamBriefs{}}
	if err := x.loadAllBriefs(); err != nil {
		x.Close()
		return nil, err
	}
	return x, nil
}

// Close implements fragments.Index.
func (x *Index) Close() error {
	x.raw.close()
	x.loads.Wait()
	x.bmu.Lock()
	for id, s := range x.briefs {
		delete(x.briefs, id)
		s.release()
	}
	x.bmu.Unlock()
	err := x.r.Close()
	if werr := x.w.Close(); err == nil {
		err = werr
	}
	return err
}

const streamCols = `id, name, arn, device_name, media_type, kms_key_id, version, status, created_ns, retention_hours, tags`

func scanStream(row interface{ Scan(...any) error }) (*fragments.Stream, error) {
	var s fragments.Stream
	var created int64
	var tags string
	if err := row.Scan(&s.ID, &s.Name, &s.ARN, &s.DeviceName, &s.MediaType, &s.KmsKeyID, &s.Version, &s.Status, &created, &s.RetentionHours, &tags); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fragments.ErrNotFound
		}
		return nil, err
	}
	s.CreationTime = time.Unix(0, created)
	if err := json.Unmarshal([]byte(tags), &s.Tags); err != nil {
		return nil, err
	}
	return &s, nil
}

// CreateStream implements fragments.Index. s.ARN may contain "%d", replaced
// by nothing: the caller builds the ARN from the creation time.
func (x *Index) CreateStream(s *fragments.Stream) error {
	tags, _ := json.Marshal(nonNil(s.Tags))
	res, err := x.w.Exec(`INSERT INTO streams (name, arn, device_name, media_type, kms_key_id, version, status, created_ns, retention_hours, tags)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM streams WHERE name = ?)`,
		s.Name, s.ARN, s.DeviceName, s.MediaType, s.KmsKeyID, s.Version, s.Status, s.CreationTime.UnixNano(), s.RetentionHours, string(tags), s.Name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fragments.ErrStreamExists
	}
	if s.ID, err = res.LastInsertId(); err != nil {
		return err
	}
	x.newBriefs(s.ID)
	return nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Stream implements fragments.Index.
func (x *Index) Stream(name, arn string) (*fragments.Stream, error) {
	if name != "" {
		return scanStream(x.r.QueryRow(`SELECT `+streamCols+` FROM streams WHERE name = ?`, name))
	}
	return scanStream(x.r.QueryRow(`SELECT `+streamCols+` FROM streams WHERE arn = ?`, arn))
}

// StreamByID implements fragments.Index.
func (x *Index) StreamByID(id int64) (*fragments.Stream, error) {
	return scanStream(x.r.QueryRow(`SELECT `+streamCols+` FROM streams WHERE id = ?`, id))
}

// Streams implements fragments.Index.
func (x *Index) Streams(prefix, after string, limit int) ([]*fragments.Stream, error) {
	rows, err := x.r.Query(`SELECT `+streamCols+` FROM streams WHERE name > ? AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?`,
		after, len(prefix), prefix, limit)
	if err != nil {
		return nil, err
	}
	return collectStreams(rows)
}

// AllStreams implements fragments.Index.
func (x *Index) AllStreams() ([]*fragments.Stream, error) {
	rows, err := x.r.Query(`SELECT ` + streamCols + ` FROM streams ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return collectStreams(rows)
}

func collectStreams(rows *sql.Rows) ([]*fragments.Stream, error) {
	defer rows.Close()
	var out []*fragments.Stream
	for rows.Next() {
		s, err := scanStream(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// UpdateStream implements fragments.Index.
func (x *Index) UpdateStream(s *fragments.Stream, oldVersion string) error {
	tags, _ := json.Marshal(nonNil(s.Tags))
	res, err := x.w.Exec(`UPDATE streams SET device_name = ?, media_type = ?, version = ?, status = ?, retention_hours = ?, tags = ?
		WHERE id = ? AND version = ?`,
		s.DeviceName, s.MediaType, s.Version, s.Status, s.RetentionHours, string(tags), s.ID, oldVersion)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fragments.ErrVersion
	}
	return nil
}

// DeleteStream implements fragments.Index.
func (x *Index) DeleteStream(id int64) error {
	tx, err := x.w.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{
		`DELETE FROM fragments WHERE stream_id = ?`,
		`DELETE FROM fragment_meta WHERE stream_id = ?`,
		`DELETE FROM headers WHERE stream_id = ?`,
		`DELETE FROM segments WHERE stream_id = ?`,
		`DELETE FROM streams WHERE id = ?`,
	} {
		if _, err := tx.Exec(q, id); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	x.mu.Lock()
	delete(x.ordinals, id)
	x.mu.Unlock()
	x.releaseBriefs(id)
	return nil
}

// NewSegment implements fragments.Index.
func (x *Index) NewSegment(streamID int64) (int64, error) {
	res, err := x.w.Exec(`INSERT INTO segments (stream_id) VALUES (?)`, streamID)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// CloseSegment implements fragments.Index.
func (x *Index) CloseSegment(id int64) error {
	_, err := x.w.Exec(`UPDATE segments SET closed = 1 WHERE id = ?`, id)
	return err
}

// DropSegment implements fragments.Index.
func (x *Index) DropSegment(id int64) error {
	_, err := x.w.Exec(`DELETE FROM segments WHERE id = ?`, id)
	return err
}

// LastOrdinal implements fragments.Index.
func (x *Index) LastOrdinal(streamID int64) (int64, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.lastOrdinalLocked(streamID)
}

func (x *Index) lastOrdinalLocked(streamID int64) (int64, error) {
	if o, ok := x.ordinals[streamID]; ok {
		return o, nil
	}
	var o sql.NullInt64
	if err := x.r.QueryRow(`SELECT MAX(ordinal) FROM fragments WHERE stream_id = ?`, streamID).Scan(&o); err != nil {
		return 0, err
	}
	x.ordinals[streamID] = o.Int64
	return o.Int64, nil
}

// MaxFragmentNumber implements fragments.Index.
func (x *Index) MaxFragmentNumber() (uint64, error) {
	var n sql.NullInt64
	err := x.r.QueryRow(`SELECT MAX(number) FROM fragments`).Scan(&n)
	return uint64(n.Int64), err
}

// Commit implements fragments.Index: one transaction (one fsync) for the batch.
func (x *Index) Commit(batch []*fragments.Pending) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	next := map[int64]int64{}
	for _, p := range batch {
		if _, ok := next[p.Fragment.StreamID]; !ok {
			o, err := x.lastOrdinalLocked(p.Fragment.StreamID)
			if err != nil {
				return err
			}
			next[p.Fragment.StreamID] = o
		}
	}
	tx, err := x.w.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	insFrag, err := tx.Prepare(`INSERT INTO fragments (stream_id, ordinal, number, producer_ns, server_ns, duration_ns, size, timecode, segment_id, offset, header_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer insFrag.Close()
	insMeta, err := tx.Prepare(`INSERT INTO fragment_meta (stream_id, ordinal, meta) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer insMeta.Close()
	var newHeaders []*fragments.Header
	for _, p := range batch {
		f := p.Fragment
		if h := p.Header; h != nil && h.ID == 0 {
			// A header identical to one the stream already has (a producer
			// reconnecting) is that header: playback sees no change.
			err := tx.QueryRow(`SELECT id FROM headers WHERE stream_id = ? AND raw = ? ORDER BY id DESC LIMIT 1`, h.StreamID, h.Raw).Scan(&h.ID)
			if err == nil {
				newHeaders = append(newHeaders, h)
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if h := p.Header; h != nil && h.ID == 0 {
			tracks, _ := json.Marshal(h.Tracks)
			res, err := tx.Exec(`INSERT INTO headers (stream_id, timecode_scale, tracks, raw) VALUES (?, ?, ?, ?)`, h.StreamID, h.TimecodeScale, string(tracks), h.Raw)
			if err != nil {
				return err
			}
			if h.ID, err = res.LastInsertId(); err != nil {
				return err
			}
			newHeaders = append(newHeaders, h)
		}
		if p.Header != nil {
			f.HeaderID = p.Header.ID
		}
		next[f.StreamID]++
		f.Ordinal = next[f.StreamID]
		if _, err := insFrag.Exec(f.StreamID, f.Ordinal, int64(f.Number), f.ProducerNS, f.ServerNS, f.DurationNS, f.Size, f.Timecode, f.SegmentID, f.Offset, f.HeaderID); err != nil {
			return err
		}
		if _, err := insMeta.Exec(f.StreamID, f.Ordinal, p.Meta); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE segments SET last_server_ns = max(last_server_ns, ?) WHERE id = ?`, f.ServerNS, f.SegmentID); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		for _, h := range newHeaders {
			h.ID = 0
		}
		return err
	}
	for id, o := range next {
		x.ordinals[id] = o
	}
	x.addBriefs(batch)
	return nil
}

const fragCols = `ordinal, number, producer_ns, server_ns, duration_ns, size, timecode, segment_id, offset, header_id`

// briefCols are the columns of FragmentQuery.Brief: what playlists and
// manifests read.
const briefCols = `ordinal, number, producer_ns, server_ns, duration_ns, size, header_id`

// Fragments implements fragments.Index.
func (x *Index) Fragments(q fragments.FragmentQuery) ([]fragments.Fragment, error) {
	// The query has a single lower bound, the row value (ts, ordinal) >
	// (lowTS, lowOrd), so that SQLite starts the index scan there: given
	// separate bounds (ts >= From AND (ts, ordinal) > After), it seeks to the
	// first and filters up to the second, and a NextToken page deep in a
	// long range costs a scan of everything before it. Ordinals start at 1,
	// so (ts, ordinal) > (t, 0) is ts >= t.
	lowTS, lowOrd := q.From, int64(0)
	if q.AfterTS > lowTS || (q.AfterTS == lowTS && q.AfterOrdinal > lowOrd) {
		lowTS, lowOrd = q.AfterTS, q.AfterOrdinal
	}
	if q.By != fragments.ByOrdinal && q.By != fragments.ByProducer && q.MinServerNS > lowTS { // ByServer
		lowTS, lowOrd = q.MinServerNS, 0
	}
	if q.Brief {
		if out, ok := x.briefQuery(q, lowTS, lowOrd); ok {
			return out, nil
		}
	}
	cols := fragCols
	if q.Brief {
		cols = briefCols
	}
	var query string
	var args []int64
	limit := int64(q.Limit)
	switch q.By {
	case fragments.ByOrdinal:
		query = `SELECT ` + cols + ` FROM fragments WHERE stream_id = ? AND ordinal > ? AND server_ns >= ? ORDER BY ordinal LIMIT ?`
		args = []int64{q.StreamID, q.AfterOrdinal, q.MinServerNS, limit}
	case fragments.ByProducer:
		query = `SELECT ` + cols + ` FROM fragments INDEXED BY fragments_producer
		WHERE stream_id = ? AND (producer_ns, ordinal) > (?, ?) AND producer_ns <= ? AND server_ns >= ?
		ORDER BY producer_ns, ordinal LIMIT ?`
		args = []int64{q.StreamID, lowTS, lowOrd, q.To, q.MinServerNS, limit}
	default:
		query = `SELECT ` + cols + ` FROM fragments INDEXED BY fragments_server
		WHERE stream_id = ? AND (server_ns, ordinal) > (?, ?) AND server_ns <= ?
		ORDER BY server_ns, ordinal LIMIT ?`
		args = []int64{q.StreamID, lowTS, lowOrd, q.To, limit}
	}
	out := make([]fragments.Fragment, 0, max(0, min(q.Limit, 8192)))
	c, err := x.raw.get()
	if err != nil {
		return nil, err
	}
	err = c.query(query, args, func(col func(int) int64) {
		f := fragments.Fragment{StreamID: q.StreamID, Ordinal: col(0), Number: uint64(col(1)), ProducerNS: col(2), ServerNS: col(3),
			DurationNS: col(4), Size: col(5)}
		if q.Brief {
			f.HeaderID = col(6)
		} else {
			f.Timecode, f.SegmentID, f.Offset, f.HeaderID = col(6), col(7), col(8), col(9)
		}
		out = append(out, f)
	})
	x.raw.put(c, err != nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FragmentByNumber implements fragments.Index.
func (x *Index) FragmentByNumber(streamID int64, number uint64) (*fragments.Fragment, error) {
	f := fragments.Fragment{StreamID: streamID}
	var num int64
	err := x.r.QueryRow(`SELECT `+fragCols+` FROM fragments WHERE number = ? AND stream_id = ?`, int64(number), streamID).
		Scan(&f.Ordinal, &num, &f.ProducerNS, &f.ServerNS, &f.DurationNS, &f.Size, &f.Timecode, &f.SegmentID, &f.Offset, &f.HeaderID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fragments.ErrNotFound
	}
	f.Number = uint64(num)
	return &f, err
}

// Meta implements fragments.Index.
func (x *Index) Meta(streamID, ordinal int64) (*fragments.Meta, error) {
	var p []byte
	err := x.r.QueryRow(`SELECT meta FROM fragment_meta WHERE stream_id = ? AND ordinal = ?`, streamID, ordinal).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fragments.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return fragments.DecodeMeta(p)
}

// Header implements fragments.Index.
func (x *Index) Header(id int64) (*fragments.Header, error) {
	h := fragments.Header{ID: id}
	var tracks string
	err := x.r.QueryRow(`SELECT stream_id, timecode_scale, tracks, raw FROM headers WHERE id = ?`, id).Scan(&h.StreamID, &h.TimecodeScale, &tracks, &h.Raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fragments.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(tracks), &h.Tracks); err != nil {
		return nil, err
	}
	return &h, nil
}

// Expire implements fragments.Index. Server timestamps grow with ordinals,
// so the expired fragments are an ordinal prefix; it is deleted in batches to
// keep write transactions short.
func (x *Index) Expire(streamID, cutoffNS int64) ([]int64, error) {
	var last sql.NullInt64
	if err := x.r.QueryRow(`SELECT MAX(ordinal) FROM fragments WHERE stream_id = ? AND server_ns < ?`, streamID, cutoffNS).Scan(&last); err != nil {
		return nil, err
	}
	if last.Valid {
		var first int64
		if err := x.r.QueryRow(`SELECT MIN(ordinal) FROM fragments WHERE stream_id = ?`, streamID).Scan(&first); err != nil {
			return nil, err
		}
		for lo := first; lo <= last.Int64; lo += 5000 {
			hi := min(lo+4999, last.Int64)
			tx, err := x.w.Begin()
			if err != nil {
				return nil, err
			}
			_, err1 := tx.Exec(`DELETE FROM fragments WHERE stream_id = ? AND ordinal BETWEEN ? AND ?`, streamID, lo, hi)
			_, err2 := tx.Exec(`DELETE FROM fragment_meta WHERE stream_id = ? AND ordinal BETWEEN ? AND ?`, streamID, lo, hi)
			if err := errors.Join(err1, err2); err != nil {
				tx.Rollback()
				return nil, err
			}
			if err := tx.Commit(); err != nil {
				return nil, err
			}
			x.expireBriefs(streamID, hi)
		}
	}
	rows, err := x.r.Query(`SELECT id FROM segments WHERE stream_id = ? AND closed = 1 AND last_server_ns < ?`, streamID, cutoffNS)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var segs []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		segs = append(segs, id)
	}
	return segs, rows.Err()
}

var _ fragments.Index = (*Index)(nil)
