package sqlindex

import (
	"errors"
	"fmt"
	"sync"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// rawPool is a pool of read-only connections used through SQLite's C API
// (modernc.org/sqlite/lib) rather than database/sql, for the queries that
// read thousands of rows per request (playlist and manifest windows).
// Through the driver each column of each row costs a type probe, a mutex
// round and an int64 boxed into an interface; here a row is one step and a
// column one call. The connections are opened without SQLite's per-call
// mutex (SQLITE_OPEN_NOMUTEX): a connection is used by one goroutine at a
// time, which the pool guarantees. Statements stay prepared per connection.
type rawPool struct {
	path string
	max  int

	mu     sync.Mutex
	idle   []*rawConn
	open   int
	closed bool
	wait   *sync.Cond
}

func newRawPool(path string, max int) *rawPool {
	p := &rawPool{path: path, max: max}
	p.wait = sync.NewCond(&p.mu)
	return p
}

// rawConn is one connection and its prepared statements.
type rawConn struct {
	tls   *libc.TLS
	db    uintptr
	stmts map[string]uintptr
}

var errPoolClosed = errors.New("sqlindex: index closed")

// get returns an idle connection, opening one if fewer than max are open,
// or waits for one.
func (p *rawPool) get() (*rawConn, error) {
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, errPoolClosed
		}
		if n := len(p.idle); n > 0 {
			c := p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			return c, nil
		}
		if p.open < p.max {
			p.open++
			p.mu.Unlock()
			c, err := openRaw(p.path)
			if err != nil {
				p.mu.Lock()
				p.open--
				p.wait.Signal()
				p.mu.Unlock()
				return nil, err
			}
			return c, nil
		}
		p.wait.Wait()
	}
}

// put returns a connection to the pool; broken ones (and all after Close)
// are closed.
func (p *rawPool) put(c *rawConn, broken bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if broken || p.closed {
		p.open--
		c.close()
	} else {
		p.idle = append(p.idle, c)
	}
	p.wait.Signal()
}

// close closes the idle connections; busy ones close when they are put back.
func (p *rawPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.idle {
		p.open--
		c.close()
	}
	p.idle = nil
	p.wait.Broadcast()
}

func openRaw(path string) (*rawConn, error) {
	c := &rawConn{tls: libc.NewTLS(), stmts: map[string]uintptr{}}
	name, err := libc.CString(path)
	if err != nil {
		c.tls.Close()
		return nil, err
	}
	defer libc.Xfree(c.tls, name)
	pdb := libc.Xmalloc(c.tls, 8)
	if pdb == 0 {
		c.tls.Close()
		return nil, errors.New("sqlindex: out of memory")
	}
	defer libc.Xfree(c.tls, pdb)
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, pdb, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_NOMUTEX, 0)
	c.db = libc.AtomicLoadPUintptr(pdb)
	if rc != sqlite3.SQLITE_OK {
		err := c.err(rc)
		c.close()
		return nil, err
	}
	sqlite3.Xsqlite3_busy_timeout(c.tls, c.db, 10000)
	if err := c.exec("PRAGMA query_only = 1"); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *rawConn) close() {
	for _, st := range c.stmts {
		sqlite3.Xsqlite3_finalize(c.tls, st)
	}
	if c.db != 0 {
		sqlite3.Xsqlite3_close_v2(c.tls, c.db)
	}
	c.tls.Close()
}

func (c *rawConn) err(rc int32) error {
	msg := "unknown"
	if c.db != 0 {
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
	}
	return fmt.Errorf("sqlindex: sqlite: %s (%d)", msg, rc)
}

// exec runs a statement without results.
func (c *rawConn) exec(query string) error {
	st, err := c.stmt(query)
	if err != nil {
		return err
	}
	defer sqlite3.Xsqlite3_reset(c.tls, st)
	if rc := sqlite3.Xsqlite3_step(c.tls, st); rc != sqlite3.SQLITE_DONE && rc != sqlite3.SQLITE_ROW {
		return c.err(rc)
	}
	return nil
}

// stmt returns the connection's prepared statement for query.
func (c *rawConn) stmt(query string) (uintptr, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	z, err := libc.CString(query)
	if err != nil {
		return 0, err
	}
	defer libc.Xfree(c.tls, z)
	pst := libc.Xmalloc(c.tls, 8)
	if pst == 0 {
		return 0, errors.New("sqlindex: out of memory")
	}
	defer libc.Xfree(c.tls, pst)
	if rc := sqlite3.Xsqlite3_prepare_v2(c.tls, c.db, z, -1, pst, 0); rc != sqlite3.SQLITE_OK {
		return 0, c.err(rc)
	}
	st := libc.AtomicLoadPUintptr(pst)
	c.stmts[query] = st
	return st, nil
}

// query runs a prepared query with int64 arguments and calls row for each
// result row with a function reading column i as an int64.
func (c *rawConn) query(query string, args []int64, row func(col func(i int) int64)) error {
	st, err := c.stmt(query)
	if err != nil {
		return err
	}
	defer sqlite3.Xsqlite3_reset(c.tls, st)
	for i, a := range args {
		if rc := sqlite3.Xsqlite3_bind_int64(c.tls, st, int32(i+1), a); rc != sqlite3.SQLITE_OK {
			return c.err(rc)
		}
	}
	col := func(i int) int64 { return sqlite3.Xsqlite3_column_int64(c.tls, st, int32(i)) }
	for {
		switch rc := sqlite3.Xsqlite3_step(c.tls, st); rc {
		case sqlite3.SQLITE_ROW:
			row(col)
		case sqlite3.SQLITE_DONE:
			return nil
		default:
			return c.err(rc)
		}
	}
}
