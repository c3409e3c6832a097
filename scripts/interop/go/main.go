// Command franzgo drives the franz-go Kafka client (github.com/twmb/franz-go) for the interop
// suite. It speaks the same line protocol as the Java driver (scripts/interop/java), so pytest
// holds every client to the same expectations:
//
//	produce  stdin : partition(-1 = client picks) TAB timestamp(-1 = none) TAB key TAB value TAB headers
//	         stdout: ack TAB partition TAB offset TAB timestamp      (one per input line, same order)
//	consume  stdout: rec TAB partition TAB offset TAB timestamp TAB timestampType TAB key TAB value TAB headers
//	                 done TAB count
//
// Bytes are hex, "~" is null, an empty field is an empty byte string. Headers are
// namehex:valuehex joined by commas. Client properties come as --prop k=v using the Java /
// librdkafka names the tests already pass (see applyProp); an unknown one is an error, so a
// test never silently runs with a setting the driver ignored.
//
// Every call is bounded: each command runs under a context deadline. Exit status 0 on success,
// 1 on any error (also printed as an "error" line).
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// commandTimeout bounds every command; pytest's own timeout is longer.
const commandTimeout = 150 * time.Second

// maxInputLine bounds one produce input line (a 900 KiB record is ~1.8 MB of hex).
const maxInputLine = 8 << 20

type args struct {
	command string
	opts    map[string]string
	props   [][2]string
}

func parseArgs(argv []string) (*args, error) {
	if len(argv) == 0 {
		return nil, errors.New("usage: franzgo <command> --bootstrap HOST:PORT [--name value ...] [--prop k=v ...]")
	}
	a := &args{command: argv[0], opts: map[string]string{}}
	for i := 1; i < len(argv); i += 2 {
		if !strings.HasPrefix(argv[i], "--") || i+1 >= len(argv) {
			return nil, fmt.Errorf("bad argument %q", argv[i])
		}
		name := argv[i][2:]
		if name == "prop" {
			k, v, ok := strings.Cut(argv[i+1], "=")
			if !ok {
				return nil, fmt.Errorf("bad --prop %q", argv[i+1])
			}
			a.props = append(a.props, [2]string{k, v})
		} else {
			a.opts[name] = argv[i+1]
		}
	}
	return a, nil
}

func (a *args) req(name string) string {
	v, ok := a.opts[name]
	if !ok {
		panic(fmt.Errorf("missing --%s", name))
	}
	return v
}

func (a *args) get(name, dflt string) string {
	if v, ok := a.opts[name]; ok {
		return v
	}
	return dflt
}

func (a *args) int(name string) int64 {
	n, err := strconv.ParseInt(a.req(name), 10, 64)
	if err != nil {
		panic(fmt.Errorf("--%s: %w", name, err))
	}
	return n
}

// applyProp maps the Java/librdkafka property names the tests use onto franz-go options.
func applyProp(k, v string) ([]kgo.Opt, error) {
	ms := func() (time.Duration, error) {
		n, err := strconv.Atoi(v)
		return time.Duration(n) * time.Millisecond, err
	}
	switch k {
	case "linger.ms":
		d, err := ms()
		return []kgo.Opt{kgo.ProducerLinger(d)}, err
	case "fetch.max.wait.ms":
		d, err := ms()
		return []kgo.Opt{kgo.FetchMaxWait(d)}, err
	case "acks":
		switch v {
		case "all", "-1":
			return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}, nil
		case "1":
			return []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}, nil
		case "0":
			return []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}, nil
		}
	case "enable.idempotence":
		if v == "false" {
			return []kgo.Opt{kgo.DisableIdempotentWrite()}, nil
		}
		return nil, nil
	case "compression.type":
		codecs := map[string]kgo.CompressionCodec{
			"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
			"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
		}
		if c, ok := codecs[v]; ok {
			return []kgo.Opt{kgo.ProducerBatchCompression(c)}, nil
		}
	}
	return nil, fmt.Errorf("franzgo driver: unsupported property %s=%s", k, v)
}

func newClient(a *args, extra ...kgo.Opt) *kgo.Client {
	opts := []kgo.Opt{
		kgo.SeedBrokers(a.req("bootstrap")),
		kgo.RequestTimeoutOverhead(20 * time.Second),
		kgo.RecordDeliveryTimeout(60 * time.Second),
		kgo.ProduceRequestTimeout(30 * time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	opts = append(opts, extra...)
	for _, p := range a.props {
		o, err := applyProp(p[0], p[1])
		if err != nil {
			panic(err)
		}
		opts = append(opts, o...)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		panic(err)
	}
	return cl
}

func hexOrNull(b []byte) string {
	if b == nil {
		return "~"
	}
	return hex.EncodeToString(b)
}

func bytesOf(field string) []byte {
	if field == "~" {
		return nil
	}
	b, err := hex.DecodeString(field)
	if err != nil {
		panic(fmt.Errorf("bad hex %q: %w", field, err))
	}
	if b == nil {
		b = []byte{}
	}
	return b
}

func headersOf(field string) []kgo.RecordHeader {
	if field == "" {
		return nil
	}
	var hs []kgo.RecordHeader
	for _, kv := range strings.Split(field, ",") {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			panic(fmt.Errorf("bad header %q", kv))
		}
		hs = append(hs, kgo.RecordHeader{Key: string(bytesOf(k)), Value: bytesOf(v)})
	}
	return hs
}

func main() {
	a, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	status := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				msg := strings.ReplaceAll(fmt.Sprint(r), "\n", " ")
				fmt.Fprintf(out, "error\t%s\n", msg)
				fmt.Fprintln(os.Stderr, "franzgo:", msg)
				status = 1
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		switch a.command {
		case "create-topic":
			createTopic(ctx, a, out)
		case "describe":
			describe(ctx, a, out)
		case "produce":
			produce(ctx, a, out)
		case "consume":
			consume(ctx, a, out)
		case "offsets":
			offsets(ctx, a, out)
		case "seek":
			seek(ctx, a, out)
		case "longpoll":
			longpoll(ctx, a, out)
		default:
			panic(fmt.Errorf("unknown command %s", a.command))
		}
	}()
	out.Flush()
	os.Exit(status)
}

// ---- admin ----

func createTopic(ctx context.Context, a *args, out *bufio.Writer) {
	topic := a.req("topic")
	partitions := int32(a.int("partitions"))
	cl := newClient(a)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, partitions, 1, nil, topic)
	if err != nil {
		panic(err)
	}
	if r, ok := resp[topic]; !ok || r.Err != nil {
		panic(fmt.Errorf("create %s: %v", topic, r.Err))
	}
	fmt.Fprintf(out, "created\t%s\n", topic)
	printDescription(ctx, adm, topic, partitions, out)
}

func describe(ctx context.Context, a *args, out *bufio.Writer) {
	cl := newClient(a)
	defer cl.Close()
	want, _ := strconv.Atoi(a.get("partitions", "0"))
	printDescription(ctx, kadm.NewClient(cl), a.req("topic"), int32(want), out)
}

// printDescription waits (bounded) until the topic shows `expected` partitions with leaders.
func printDescription(ctx context.Context, adm *kadm.Client, topic string, expected int32, out *bufio.Writer) {
	deadline := time.Now().Add(20 * time.Second)
	var td kadm.TopicDetail
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			td = md.Topics[topic]
			ready := td.Err == nil && int32(len(td.Partitions)) >= expected
			for _, p := range td.Partitions {
				ready = ready && p.Leader >= 0 && p.Err == nil
			}
			if ready {
				break
			}
		}
		if time.Now().After(deadline) {
			panic(fmt.Errorf("topic %s not ready: metadata err %v, topic err %v", topic, err, td.Err))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range td.Partitions.Sorted() {
		fmt.Fprintf(out, "partition\t%d\t%d\n", p.Partition, p.Leader)
	}
}

// ---- produce ----

func produce(ctx context.Context, a *args, out *bufio.Writer) {
	topic := a.req("topic")
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), maxInputLine)
	var recs []*kgo.Record
	manual, auto := 0, 0
	for in.Scan() {
		line := in.Text()
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			panic(fmt.Errorf("bad input line, want 5 fields: %d", len(f)))
		}
		partition, _ := strconv.Atoi(f[0])
		ts, _ := strconv.ParseInt(f[1], 10, 64)
		r := &kgo.Record{Topic: topic, Key: bytesOf(f[2]), Value: bytesOf(f[3]), Headers: headersOf(f[4])}
		if partition >= 0 {
			r.Partition = int32(partition)
			manual++
		} else {
			auto++
		}
		if ts >= 0 {
			r.Timestamp = time.UnixMilli(ts)
		}
		recs = append(recs, r)
	}
	if err := in.Err(); err != nil {
		panic(err)
	}
	if manual > 0 && auto > 0 {
		panic(errors.New("franzgo driver: mix of explicit and client-picked partitions in one produce"))
	}
	var extra []kgo.Opt
	if manual > 0 {
		extra = append(extra, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl := newClient(a, extra...)
	defer cl.Close()
	// ProduceSync's results come in completion order; the acks are printed in input order
	// from the records themselves, which the client fills in once each is acknowledged.
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		panic(fmt.Errorf("produce: %w", err))
	}
	for _, r := range recs {
		fmt.Fprintf(out, "ack\t%d\t%d\t%d\n", r.Partition, r.Offset, r.Timestamp.UnixMilli())
	}
}

// ---- consume ----

func printRecord(out *bufio.Writer, r *kgo.Record) {
	hs := make([]string, 0, len(r.Headers))
	for _, h := range r.Headers {
		hs = append(hs, hex.EncodeToString([]byte(h.Key))+":"+hexOrNull(h.Value))
	}
	tsType := "CreateTime"
	if r.Attrs.TimestampType() == 1 {
		tsType = "LogAppendTime"
	}
	fmt.Fprintf(out, "rec\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", r.Partition, r.Offset, r.Timestamp.UnixMilli(), tsType,
		hexOrNull(r.Key), hexOrNull(r.Value), strings.Join(hs, ","))
}

func consume(ctx context.Context, a *args, out *bufio.Writer) {
	topic := a.req("topic")
	count := a.int("count")
	timeout := time.Duration(a.int("timeout-ms")) * time.Millisecond
	start := kgo.NewOffset().AtStart()
	if s := a.get("start", "earliest"); s != "earliest" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			panic(err)
		}
		start = kgo.NewOffset().At(n)
	}
	parts := map[int32]kgo.Offset{}
	for _, s := range strings.Split(a.req("partitions"), ",") {
		p, err := strconv.Atoi(s)
		if err != nil {
			panic(err)
		}
		parts[int32(p)] = start
	}
	cl := newClient(a, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	defer cl.Close()
	got := int64(0)
	pollUntil(ctx, cl, timeout, func(r *kgo.Record) bool {
		printRecord(out, r)
		got++
		return got < count
	})
	fmt.Fprintf(out, "done\t%d\n", got)
}

// pollUntil polls for at most `timeout`, handing each record to `each` until it returns false.
// Fetch errors other than a poll deadline fail the command.
func pollUntil(ctx context.Context, cl *kgo.Client, timeout time.Duration, each func(*kgo.Record) bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		for _, e := range fs.Errors() {
			if errors.Is(e.Err, context.DeadlineExceeded) || errors.Is(e.Err, context.Canceled) {
				continue
			}
			panic(fmt.Errorf("fetch %s/%d: %w", e.Topic, e.Partition, e.Err))
		}
		more := true
		fs.EachRecord(func(r *kgo.Record) {
			if more {
				more = each(r)
			}
		})
		if !more {
			return
		}
	}
}

// ---- list offsets ----

// offsets prints the consumer-side view (a ListOffsets request issued through the client,
// which routes it to each partition's leader) and the admin view (kadm).
func offsets(ctx context.Context, a *args, out *bufio.Writer) {
	topic := a.req("topic")
	partition := int32(a.int("partition"))
	var times []int64
	for _, s := range strings.Split(a.get("times", ""), ",") {
		if s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				panic(err)
			}
			times = append(times, n)
		}
	}
	cl := newClient(a)
	defer cl.Close()

	list := func(ts int64) (int64, int64) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		t := kmsg.NewListOffsetsRequestTopic()
		t.Topic = topic
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Partition = partition
		p.Timestamp = ts
		t.Partitions = append(t.Partitions, p)
		req.Topics = append(req.Topics, t)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			panic(err)
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					panic(fmt.Errorf("list offsets %s/%d at %d: %w", topic, partition, ts, err))
				}
				return rp.Offset, rp.Timestamp
			}
		}
		panic(fmt.Errorf("list offsets %s/%d: empty answer", topic, partition))
	}
	earliest, _ := list(-2)
	latest, _ := list(-1)
	fmt.Fprintf(out, "consumer-earliest\t%d\n", earliest)
	fmt.Fprintf(out, "consumer-latest\t%d\n", latest)
	for _, ts := range times {
		off, at := list(ts)
		if off < 0 {
			fmt.Fprintf(out, "consumer-time\t%d\t~\t~\n", ts)
		} else {
			fmt.Fprintf(out, "consumer-time\t%d\t%d\t%d\n", ts, off, at)
		}
	}

	adm := kadm.NewClient(cl)
	lookup := func(l kadm.ListedOffsets, err error) kadm.ListedOffset {
		if err != nil {
			panic(err)
		}
		o, ok := l.Lookup(topic, partition)
		if !ok || o.Err != nil {
			panic(fmt.Errorf("kadm list offsets %s/%d: found %v, %v", topic, partition, ok, o.Err))
		}
		return o
	}
	fmt.Fprintf(out, "admin-earliest\t%d\n", lookup(adm.ListStartOffsets(ctx, topic)).Offset)
	fmt.Fprintf(out, "admin-latest\t%d\n", lookup(adm.ListEndOffsets(ctx, topic)).Offset)
	for _, ts := range times {
		o := lookup(adm.ListOffsetsAfterMilli(ctx, ts, topic))
		fmt.Fprintf(out, "admin-time\t%d\t%d\t%d\n", ts, o.Offset, o.Timestamp)
	}
}

// ---- seek ----

// seek runs --ops (seek:N, beginning, end) on one partition and after each prints
// "seek TAB op TAB position TAB offsets(comma) TAB values(comma hex)" for the next --take
// records. franz-go has no consumer position(); after "end" the driver checks that nothing
// is delivered for a moment and prints the end offset from ListOffsets as the position.
func seek(ctx context.Context, a *args, out *bufio.Writer) {
	topic := a.req("topic")
	partition := int32(a.int("partition"))
	take, _ := strconv.Atoi(a.get("take", "3"))
	cl := newClient(a)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, op := range strings.Split(a.req("ops"), ",") {
		var at kgo.Offset
		want := take
		switch {
		case strings.HasPrefix(op, "seek:"):
			n, err := strconv.ParseInt(op[5:], 10, 64)
			if err != nil {
				panic(err)
			}
			at = kgo.NewOffset().At(n)
		case op == "beginning":
			at = kgo.NewOffset().AtStart()
		case op == "end":
			at = kgo.NewOffset().AtEnd()
			want = 0
		default:
			panic(fmt.Errorf("unknown seek op %s", op))
		}
		cl.RemoveConsumePartitions(map[string][]int32{topic: {partition}})
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: at}})
		var offs, vals []string
		position := int64(-1)
		if want == 0 {
			pollUntil(ctx, cl, 1500*time.Millisecond, func(r *kgo.Record) bool {
				panic(fmt.Errorf("record at offset %d delivered after seeking to the end", r.Offset))
			})
			l, err := adm.ListEndOffsets(ctx, topic)
			if err != nil {
				panic(err)
			}
			o, _ := l.Lookup(topic, partition)
			position = o.Offset
		} else {
			pollUntil(ctx, cl, 20*time.Second, func(r *kgo.Record) bool {
				offs = append(offs, strconv.FormatInt(r.Offset, 10))
				vals = append(vals, hexOrNull(r.Value))
				return len(offs) < want
			})
		}
		fmt.Fprintf(out, "seek\t%s\t%d\t%s\t%s\n", op, position, strings.Join(offs, ","), strings.Join(vals, ","))
	}
}

// ---- long poll ----

// longpoll: a consumer sits at the log end; after --delay-ms a producer in this process sends
// one record. Prints "longpoll TAB ms from producer ack to consumer receipt TAB offset TAB
// start TAB value".
func longpoll(ctx context.Context, a *args, out *bufio.Writer) {
	topic := a.req("topic")
	partition := int32(a.int("partition"))
	delay := time.Duration(a.int("delay-ms")) * time.Millisecond
	value := bytesOf(a.req("value"))

	prod, err := kgo.NewClient(kgo.SeedBrokers(a.req("bootstrap")),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DisableIdempotentWrite())
	if err != nil {
		panic(err)
	}
	defer prod.Close()
	adm := kadm.NewClient(prod)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		panic(err)
	}
	end, _ := ends.Lookup(topic, partition)
	cons := newClient(a, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtEnd()}}))
	defer cons.Close()

	acked := make(chan time.Time, 1)
	sendErr := make(chan error, 1)
	go func() {
		time.Sleep(delay)
		r := &kgo.Record{Topic: topic, Partition: partition, Value: value}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			sendErr <- err
			return
		}
		acked <- time.Now()
	}()
	var got *kgo.Record
	var gotAt time.Time
	pollUntil(ctx, cons, 40*time.Second, func(r *kgo.Record) bool {
		got, gotAt = r, time.Now()
		return false
	})
	if got == nil {
		panic(fmt.Errorf("no record received within 40 s (start offset %d)", end.Offset))
	}
	var ackAt time.Time
	select {
	case ackAt = <-acked:
	case err := <-sendErr:
		panic(fmt.Errorf("helper producer failed: %w", err))
	case <-time.After(30 * time.Second):
		panic(errors.New("producer never got an ack"))
	}
	fmt.Fprintf(out, "longpoll\t%d\t%d\t%d\t%s\n", gotAt.Sub(ackAt).Milliseconds(), got.Offset, end.Offset, hexOrNull(got.Value))
}
