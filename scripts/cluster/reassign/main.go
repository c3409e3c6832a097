// Reassignment and preferred-leader check with franz-go's admin client (kadm) against a
// 3-broker cluster: a 1-partition RF 2 topic on brokers [1 2] gets 200 acks=all records,
// is reassigned to [3 2] (AlterPartitionReassignments), which must complete by itself
// (ListPartitionReassignments empty, Metadata replicas [3 2], ISR both), every record
// still readable in order; then a reorder to [2 3] and ElectLeaders(preferred) make broker 2 lead. Bounded
// (60 s); prints what it saw; exits 1 on any mismatch.
//
//	go run . -bootstrap 127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func fail(format string, a ...any) {
	fmt.Printf("FAIL: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:29092", "brokers")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*bootstrap, ",")...),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		fail("client: %v", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := fmt.Sprintf("moves-%d", time.Now().UnixNano())

	// Manual assignment [1 2] through the raw request (kadm's CreateTopic has none).
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 20000
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = topic, -1, -1
	a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	a.Partition, a.Replicas = 0, []int32{1, 2}
	t.ReplicaAssignment = append(t.ReplicaAssignment, a)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		fail("create: %v %+v", err, resp)
	}
	describe := func() kadm.PartitionDetail {
		td, err := adm.ListTopics(ctx, topic)
		if err != nil {
			fail("metadata: %v", err)
		}
		return td[topic].Partitions[0]
	}
	wait := func(what string, ok func(kadm.PartitionDetail) bool) kadm.PartitionDetail {
		for {
			p := describe()
			if ok(p) {
				return p
			}
			if ctx.Err() != nil {
				fail("timed out waiting for %s: %+v", what, p)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("a leader with ISR [1 2]", func(p kadm.PartitionDetail) bool { return p.Leader > 0 && len(p.ISR) == 2 })

	const n = 200
	for i := 0; i < n; i++ {
		r := &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprintf("v%d", i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			fail("produce %d: %v", i, err)
		}
	}

	var move kadm.AlterPartitionAssignmentsReq
	move.Assign(topic, 0, []int32{3, 2})
	ar, err := adm.AlterPartitionAssignments(ctx, move)
	if err != nil {
		fail("alter: %v", err)
	}
	for _, ps := range ar {
		for _, p := range ps {
			if p.Err != nil {
				fail("alter %s-%d: %v", p.Topic, p.Partition, p.Err)
			}
		}
	}
	started := time.Now()
	for {
		l, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}}})
		if err != nil {
			fail("list reassignments: %v", err)
		}
		if len(l.Sorted()) == 0 {
			break
		}
		if ctx.Err() != nil {
			fail("reassignment never completed: %+v", l.Sorted())
		}
		time.Sleep(100 * time.Millisecond)
	}
	p := wait("replicas [3 2] all in sync", func(p kadm.PartitionDetail) bool {
		return fmt.Sprint(p.Replicas) == "[3 2]" && len(p.ISR) == 2 && p.Leader > 1
	})
	fmt.Printf("reassigned [1 2] -> [3 2] in %d ms; leader %d, ISR %v\n",
		time.Since(started).Milliseconds(), p.Leader, p.ISR)

	// Reorder to [2 3]: the preferred replica becomes 2 while 3 may still lead; a
	// preferred election then moves leadership to 2 (or is refused as not needed).
	var reorder kadm.AlterPartitionAssignmentsReq
	reorder.Assign(topic, 0, []int32{2, 3})
	if _, err := adm.AlterPartitionAssignments(ctx, reorder); err != nil {
		fail("reorder: %v", err)
	}
	p = wait("replicas [2 3]", func(p kadm.PartitionDetail) bool { return fmt.Sprint(p.Replicas) == "[2 3]" })
	er, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		fail("elect: %v", err)
	}
	r := er[topic][0]
	switch {
	case p.Leader == 2 && r.Err == nil:
		fail("a needless election was not refused")
	case p.Leader != 2 && r.Err != nil:
		fail("elect %s-0: %v %s", topic, r.Err, r.ErrMessage)
	}
	p = wait("broker 2 (preferred) leading", func(p kadm.PartitionDetail) bool { return p.Leader == 2 })
	fmt.Printf("preferred election: leader %d (election error: %v)\n", p.Leader, r.Err)

	// Every record, in order, from the new replicas.
	cons, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*bootstrap, ",")...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		fail("consumer: %v", err)
	}
	defer cons.Close()
	got := 0
	for got < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("read %d of %d records", got, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) != fmt.Sprintf("v%d", got) || r.Offset != int64(got) {
				fail("record %d: %q at %d", got, r.Value, r.Offset)
			}
			got++
		})
	}
	fmt.Printf("OK: %d records intact after the move\n", got)
}
