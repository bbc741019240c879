package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// GenConfig configures Generate: a closed-loop h2c gRPC load generator that cycles
// through many prepared Check bodies (h2load posts one fixed body).
type GenConfig struct {
	// Addr is the server's host:port (plaintext HTTP/2, prior knowledge).
	Addr string
	// Bodies are gRPC-framed request messages (CheckBody), sent in order, cycling.
	Bodies [][]byte
	// Conns is the number of connections (default 4); Streams the calls in flight per
	// connection (default 16).
	Conns, Streams int
	// Duration ends the run; Total, if > 0, sends exactly that many calls instead.
	Duration time.Duration
	Total    int
	// Rate, if > 0, paces the calls to this many per second over all connections (an
	// open-loop load: a call is sent when it is due, whatever is in flight, up to
	// Conns×Streams); 0 sends as fast as the server answers.
	Rate float64
}

// GenResult is the outcome of one Generate run.
type GenResult struct {
	// Done counts calls that ended with trailers; Elapsed is the time the run took.
	Done    int
	Elapsed time.Duration
	// GRPCErrors counts calls whose grpc-status was not 0, or that were reset.
	GRPCErrors int
	// Codes counts CheckResponse status codes (0 allow, 7 forbidden, 16 unauthenticated…).
	Codes map[int]int
	// Latencies are the call durations under this closed-loop load, sorted.
	Latencies []time.Duration
}

// RPS is Done per second of Elapsed.
func (r GenResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Done) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of Latencies (nearest rank).
func (r GenResult) Percentile(p float64) time.Duration {
	return percentile(r.Latencies, p)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// requestHeaderBlock is the HPACK block of every request: never-indexed literals only, so
// the same bytes stay valid whatever the decoder's dynamic table holds.
func requestHeaderBlock(authority string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", CheckPath}, {":authority", authority},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1], Sensitive: true})
	}
	return buf.Bytes()
}

// Generate runs the load and returns when Duration has passed (calls in flight then are
// not counted) or Total calls have finished.
func Generate(ctx context.Context, cfg GenConfig) (GenResult, error) {
	if len(cfg.Bodies) == 0 {
		return GenResult{}, errors.New("load: generate: no bodies")
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 4
	}
	if cfg.Streams <= 0 {
		cfg.Streams = 16
	}
	if cfg.Total <= 0 && cfg.Duration <= 0 {
		return GenResult{}, errors.New("load: generate: set Duration or Total")
	}
	g := &gen{cfg: cfg, block: requestHeaderBlock(cfg.Addr)}
	if cfg.Total > 0 {
		g.remaining.Store(int64(cfg.Total))
	} else {
		g.remaining.Store(1 << 62)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	g.start = start
	if cfg.Duration > 0 && cfg.Total <= 0 {
		g.deadline = start.Add(cfg.Duration)
		t := time.AfterFunc(cfg.Duration, cancel)
		defer t.Stop()
	}
	conns := make([]*genConn, cfg.Conns)
	for i := range conns {
		c, err := g.dial(ctx)
		if err != nil {
			for _, c := range conns[:i] {
				c.nc.Close()
			}
			return GenResult{}, err
		}
		conns[i] = c
	}
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.run(ctx)
		}()
	}
	wg.Wait()
	res := GenResult{Elapsed: time.Since(start), Codes: map[int]int{}}
	if !g.deadline.IsZero() {
		res.Elapsed = cfg.Duration
	}
	for _, c := range conns {
		res.Done += c.done
		res.GRPCErrors += c.grpcErrors
		for k, v := range c.codes {
			res.Codes[k] += v
		}
		res.Latencies = append(res.Latencies, c.lat...)
	}
	slices.Sort(res.Latencies)
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if cfg.Total > 0 && res.Done != cfg.Total {
		return res, fmt.Errorf("load: generate: %d of %d calls finished", res.Done, cfg.Total)
	}
	return res, nil
}

type gen struct {
	cfg       GenConfig
	block     []byte
	next      atomic.Uint64 // index of the next body
	remaining atomic.Int64  // calls still to start
	deadline  time.Time     // zero: Total mode
	start     time.Time
	paced     atomic.Int64 // calls scheduled so far (Rate mode)
}

// wait blocks until the next call is due (Rate mode), flushing first; false if ctx ended.
func (c *genConn) wait(ctx context.Context) bool {
	n := c.g.paced.Add(1) - 1
	due := c.g.start.Add(time.Duration(float64(n) * float64(time.Second) / c.g.cfg.Rate))
	c.wmu.Lock()
	err := c.bw.Flush()
	c.wmu.Unlock()
	if err != nil {
		return false
	}
	d := time.Until(due)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

type stream struct {
	start time.Time
	data  []byte
	gst   int // grpc-status, -1 until trailers
}

type genConn struct {
	g  *gen
	nc net.Conn
	fr *http2.Framer
	bw *bufio.Writer

	wmu sync.Mutex // guards fr writes and bw

	mu      sync.Mutex
	cond    *sync.Cond
	window  int64 // connection send window
	streams map[uint32]*stream
	closed  error

	slots chan struct{}

	// reader-only counters
	done, grpcErrors int
	codes            map[int]int
	lat              []time.Duration
}

func (g *gen) dial(ctx context.Context) (*genConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", g.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("load: generate: %w", err)
	}
	c := &genConn{g: g, nc: nc, window: 65535, streams: map[uint32]*stream{},
		slots: make(chan struct{}, g.cfg.Streams), codes: map[int]int{}}
	c.cond = sync.NewCond(&c.mu)
	c.bw = bufio.NewWriterSize(nc, 64<<10)
	c.fr = http2.NewFramer(c.bw, bufio.NewReaderSize(nc, 64<<10))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	if _, err := c.bw.WriteString(http2.ClientPreface); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 24},
		http2.Setting{ID: http2.SettingEnablePush, Val: 0}); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.fr.WriteWindowUpdate(0, 1<<30); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("load: generate: %w", err)
	}
	return c, nil
}

func (c *genConn) run(ctx context.Context) error {
	readErr := make(chan error, 1)
	go func() { readErr <- c.readLoop() }()
	werr := c.writeLoop(ctx)
	// wait for calls in flight (Total mode) or stop at once (duration mode)
	if werr == nil && c.g.deadline.IsZero() {
		for range cap(c.slots) {
			select {
			case c.slots <- struct{}{}:
			case err := <-readErr:
				c.nc.Close()
				return err
			}
		}
	}
	c.mu.Lock()
	if c.closed == nil {
		c.closed = errStopped
	}
	c.mu.Unlock()
	c.nc.Close()
	rerr := <-readErr
	if errors.Is(rerr, errStopped) || errors.Is(rerr, net.ErrClosed) {
		rerr = nil
	}
	return errors.Join(werr, rerr)
}

var errStopped = errors.New("load: generate: stopped")

func (c *genConn) writeLoop(ctx context.Context) error {
	var id uint32 = 1
	for {
		select {
		case c.slots <- struct{}{}:
		default:
			c.wmu.Lock()
			err := c.bw.Flush()
			c.wmu.Unlock()
			if err != nil {
				return c.ioErr(err)
			}
			select {
			case c.slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if c.g.cfg.Rate > 0 && !c.wait(ctx) {
			<-c.slots
			return nil
		}
		if c.g.remaining.Add(-1) < 0 {
			<-c.slots
			c.wmu.Lock()
			err := c.bw.Flush()
			c.wmu.Unlock()
			return c.ioErr(err)
		}
		body := c.g.cfg.Bodies[(c.g.next.Add(1)-1)%uint64(len(c.g.cfg.Bodies))]
		c.mu.Lock()
		for c.window < int64(len(body)) && c.closed == nil {
			c.wmu.Lock()
			_ = c.bw.Flush()
			c.wmu.Unlock()
			c.cond.Wait()
		}
		if c.closed != nil {
			err := c.closed
			c.mu.Unlock()
			return c.ioErr(err)
		}
		c.window -= int64(len(body))
		c.streams[id] = &stream{start: time.Now(), gst: -1}
		c.mu.Unlock()
		c.wmu.Lock()
		err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.g.block, EndHeaders: true})
		if err == nil {
			err = c.fr.WriteData(id, true, body)
		}
		if err == nil && c.g.cfg.Rate > 0 { // a paced call leaves now, not with the next one
			err = c.bw.Flush()
		}
		c.wmu.Unlock()
		if err != nil {
			return c.ioErr(err)
		}
		id += 2
	}
}

func (c *genConn) ioErr(err error) error {
	if err == nil || errors.Is(err, errStopped) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return fmt.Errorf("load: generate: %w", err)
}

func (c *genConn) write(f func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := f(); err != nil {
		return err
	}
	return c.bw.Flush()
}

func (c *genConn) fail(err error) error {
	c.mu.Lock()
	if c.closed == nil {
		c.closed = err
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	return err
}

func (c *genConn) readLoop() error {
	var unacked uint32
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.mu.Lock()
			stopped := c.closed
			c.mu.Unlock()
			if stopped != nil {
				return c.fail(stopped)
			}
			return c.fail(fmt.Errorf("load: generate: read: %w", err))
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := c.write(c.fr.WriteSettingsAck); err != nil {
					return c.fail(err)
				}
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				if err := c.write(func() error { return c.fr.WritePing(true, f.Data) }); err != nil {
					return c.fail(err)
				}
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.mu.Lock()
				c.window += int64(f.Increment)
				c.cond.Broadcast()
				c.mu.Unlock()
			}
		case *http2.DataFrame:
			c.mu.Lock()
			if s := c.streams[f.StreamID]; s != nil {
				s.data = append(s.data, f.Data()...)
			}
			c.mu.Unlock()
			if unacked += uint32(len(f.Data())); unacked > 1<<20 {
				n := unacked
				unacked = 0
				if err := c.write(func() error { return c.fr.WriteWindowUpdate(0, n) }); err != nil {
					return c.fail(err)
				}
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				gst := -1
				if v := f.PseudoValue("status"); v != "" && v != "200" {
					gst = 2 // HTTP error: UNKNOWN
				}
				for _, h := range f.RegularFields() {
					if h.Name == "grpc-status" {
						gst, _ = strconv.Atoi(h.Value)
					}
				}
				c.finish(f.StreamID, gst)
			}
		case *http2.RSTStreamFrame:
			c.finish(f.StreamID, 2)
		case *http2.GoAwayFrame:
			return c.fail(fmt.Errorf("load: generate: server sent GOAWAY (%v)", f.ErrCode))
		}
	}
}

func (c *genConn) finish(id uint32, gst int) {
	now := time.Now()
	c.mu.Lock()
	s := c.streams[id]
	delete(c.streams, id)
	c.mu.Unlock()
	if s == nil {
		return
	}
	if !c.g.deadline.IsZero() && now.After(c.g.deadline) {
		<-c.slots
		return
	}
	c.done++
	c.lat = append(c.lat, now.Sub(s.start))
	if gst != 0 {
		c.grpcErrors++
	} else if msgs, err := SplitFrames(s.data); err != nil || len(msgs) != 1 {
		c.grpcErrors++
	} else if code, err := CheckStatus(msgs[0]); err != nil {
		c.grpcErrors++
	} else {
		c.codes[code]++
	}
	<-c.slots
}
