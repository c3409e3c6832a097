package dev.sluice.interop;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Command-line driver for the Apache Kafka Java client. pytest runs one command per
 * operation and asserts on the output, so every client is held to the same expectations.
 *
 * <p>Records travel as tab-separated lines. Bytes are hex, {@code ~} is null, an empty
 * field is an empty byte string. Headers are {@code namehex:valuehex} joined by commas.
 *
 * <pre>
 * produce  stdin : partition(-1 = client picks) TAB timestamp(-1 = none) TAB key TAB value TAB headers
 *          stdout: ack TAB partition TAB offset TAB timestamp      (one per input line, same order)
 * consume  stdout: rec TAB partition TAB offset TAB timestamp TAB timestampType TAB key TAB value TAB headers
 *                  done TAB count
 * group    a subscribe() member of --group on --topic (or --pattern, a server-side regex)
 *          until "close" (or EOF) on stdin
 *          stdin : commit | committed P,P,.. | close
 *          stdout: assignment TAB p,p,..   (after every change; topic:p with --pattern)
 *                  rec TAB partition TAB offset TAB value
 *                  committed | committed-offsets TAB p:offset,..  | closed
 * </pre>
 *
 * Every call is bounded: client timeouts are set below and each loop has a deadline.
 * Exit status 0 on success, 1 on any error (message on stderr and as "error" line).
 */
public final class Driver {
    private static final HexFormat HEX = HexFormat.of();
    private static final Duration POLL = Duration.ofMillis(200);

    private Driver() {}

    public static void main(String[] argv) throws Exception {
        if (argv.length == 0) {
            System.err.println("usage: Driver <command> --bootstrap HOST:PORT [options]");
            System.exit(2);
        }
        Args args = new Args(argv);
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        int status = 0;
        try {
            switch (args.command) {
                case "create-topic" -> createTopic(args, out);
                case "describe" -> describe(args, out);
                case "produce" -> produce(args, out);
                case "consume" -> consume(args, out);
                case "offsets" -> offsets(args, out);
                case "seek" -> seek(args, out);
                case "longpoll" -> longpoll(args, out);
                case "group" -> group(args, out);
                default -> throw new IllegalArgumentException("unknown command " + args.command);
            }
        } catch (Exception e) {
            Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
            out.println("error\t" + cause.getClass().getName() + ": " + String.valueOf(cause.getMessage()).replace('\n', ' '));
            cause.printStackTrace(System.err);
            status = 1;
        }
        out.flush();
        System.exit(status);
    }

    // ---- admin ----

    private static Admin admin(Args a) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a.bootstrap());
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        p.putAll(a.props);
        return Admin.create(p);
    }

    private static void createTopic(Args a, PrintStream out) throws Exception {
        String topic = a.req("topic");
        int partitions = Integer.parseInt(a.req("partitions"));
        try (Admin admin = admin(a)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                .all().get(30, TimeUnit.SECONDS);
            out.println("created\t" + topic);
            printDescription(admin, topic, partitions, out);
        }
    }

    private static void describe(Args a, PrintStream out) throws Exception {
        try (Admin admin = admin(a)) {
            printDescription(admin, a.req("topic"), Integer.parseInt(a.get("partitions", "0")), out);
        }
    }

    /** Waits (bounded) until the topic shows `expected` partitions, each with a leader. */
    private static void printDescription(Admin admin, String topic, int expected, PrintStream out) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        TopicDescription d = null;
        while (System.nanoTime() < deadline) {
            try {
                d = admin.describeTopics(List.of(topic)).allTopicNames().get(15, TimeUnit.SECONDS).get(topic);
                boolean ready = d.partitions().size() >= expected
                    && d.partitions().stream().allMatch(p -> p.leader() != null && !p.leader().isEmpty());
                if (ready) break;
            } catch (ExecutionException e) {
                if (System.nanoTime() >= deadline) throw e;
            }
            Thread.sleep(200);
        }
        if (d == null) throw new IllegalStateException("describeTopics returned nothing for " + topic);
        for (TopicPartitionInfo p : d.partitions()) {
            out.println("partition\t" + p.partition() + "\t" + (p.leader() == null ? -1 : p.leader().id()));
        }
    }

    // ---- produce ----

    private static void produce(Args a, PrintStream out) throws Exception {
        String topic = a.req("topic");
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a.bootstrap());
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "30000");
        p.putAll(a.props);
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
             BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8), 1 << 20)) {
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isEmpty()) continue;
                String[] f = line.split("\t", -1);
                if (f.length != 5) throw new IllegalArgumentException("bad input line, want 5 fields: " + f.length);
                int partition = Integer.parseInt(f[0]);
                long ts = Long.parseLong(f[1]);
                ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(topic,
                    partition < 0 ? null : partition, ts < 0 ? null : ts,
                    bytes(f[2]), bytes(f[3]), headers(f[4]));
                futures.add(producer.send(rec));
            }
            producer.flush();
            for (Future<RecordMetadata> fu : futures) {
                RecordMetadata m = fu.get(60, TimeUnit.SECONDS);
                out.println("ack\t" + m.partition() + "\t" + m.offset() + "\t" + m.timestamp());
            }
        }
    }

    // ---- consume ----

    private static KafkaConsumer<byte[], byte[]> consumer(Args a) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, a.bootstrap());
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "30000");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        p.putAll(a.props);
        return new KafkaConsumer<>(p);
    }

    private static List<TopicPartition> partitions(Args a) {
        String topic = a.req("topic");
        List<TopicPartition> tps = new ArrayList<>();
        for (String s : a.req("partitions").split(",")) tps.add(new TopicPartition(topic, Integer.parseInt(s)));
        return tps;
    }

    private static void consume(Args a, PrintStream out) {
        List<TopicPartition> tps = partitions(a);
        long count = Long.parseLong(a.req("count"));
        long timeoutMs = Long.parseLong(a.get("timeout-ms", "60000"));
        String start = a.get("start", "earliest");
        long got = 0;
        try (KafkaConsumer<byte[], byte[]> c = consumer(a)) {
            c.assign(tps);
            if (start.equals("earliest")) c.seekToBeginning(tps);
            else for (TopicPartition tp : tps) c.seek(tp, Long.parseLong(start));
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            while (got < count && System.nanoTime() < deadline) {
                ConsumerRecords<byte[], byte[]> recs = c.poll(POLL);
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    printRecord(out, r);
                    got++;
                }
            }
        }
        out.println("done\t" + got);
    }

    private static void printRecord(PrintStream out, ConsumerRecord<byte[], byte[]> r) {
        StringBuilder h = new StringBuilder();
        for (Header header : r.headers()) {
            if (h.length() > 0) h.append(',');
            h.append(HEX.formatHex(header.key().getBytes(StandardCharsets.UTF_8))).append(':').append(hex(header.value()));
        }
        out.println("rec\t" + r.partition() + "\t" + r.offset() + "\t" + r.timestamp() + "\t" + r.timestampType()
            + "\t" + hex(r.key()) + "\t" + hex(r.value()) + "\t" + h);
    }

    // ---- list offsets ----

    private static void offsets(Args a, PrintStream out) throws Exception {
        TopicPartition tp = new TopicPartition(a.req("topic"), Integer.parseInt(a.req("partition")));
        List<Long> times = new ArrayList<>();
        for (String s : a.get("times", "").split(",")) if (!s.isEmpty()) times.add(Long.parseLong(s));
        try (KafkaConsumer<byte[], byte[]> c = consumer(a)) {
            Duration t = Duration.ofSeconds(30);
            out.println("consumer-earliest\t" + c.beginningOffsets(List.of(tp), t).get(tp));
            out.println("consumer-latest\t" + c.endOffsets(List.of(tp), t).get(tp));
            for (long ts : times) {
                OffsetAndTimestamp o = c.offsetsForTimes(Map.of(tp, ts), t).get(tp);
                out.println("consumer-time\t" + ts + "\t" + (o == null ? "~\t~" : o.offset() + "\t" + o.timestamp()));
            }
        }
        try (Admin admin = admin(a)) {
            out.println("admin-earliest\t" + listOffset(admin, tp, OffsetSpec.earliest()).offset());
            out.println("admin-latest\t" + listOffset(admin, tp, OffsetSpec.latest()).offset());
            for (long ts : times) {
                ListOffsetsResult.ListOffsetsResultInfo i = listOffset(admin, tp, OffsetSpec.forTimestamp(ts));
                out.println("admin-time\t" + ts + "\t" + i.offset() + "\t" + i.timestamp());
            }
        }
    }

    private static ListOffsetsResult.ListOffsetsResultInfo listOffset(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
        return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get(30, TimeUnit.SECONDS);
    }

    // ---- seek ----

    /**
     * --ops is a comma list of seek:N, beginning, end. After each op prints
     * "seek TAB op TAB position TAB offsets(comma) TAB values(comma hex)" for the next --take records
     * (none after "end": only the position).
     */
    private static void seek(Args a, PrintStream out) {
        TopicPartition tp = new TopicPartition(a.req("topic"), Integer.parseInt(a.req("partition")));
        int take = Integer.parseInt(a.get("take", "3"));
        try (KafkaConsumer<byte[], byte[]> c = consumer(a)) {
            c.assign(List.of(tp));
            for (String op : a.req("ops").split(",")) {
                int want = take;
                if (op.startsWith("seek:")) c.seek(tp, Long.parseLong(op.substring(5)));
                else if (op.equals("beginning")) c.seekToBeginning(List.of(tp));
                else if (op.equals("end")) { c.seekToEnd(List.of(tp)); want = 0; }
                else throw new IllegalArgumentException("unknown seek op " + op);
                List<Long> offs = new ArrayList<>();
                List<String> vals = new ArrayList<>();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                while (offs.size() < want && System.nanoTime() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> r : c.poll(POLL)) {
                        if (offs.size() < want) { offs.add(r.offset()); vals.add(hex(r.value())); }
                    }
                }
                long pos = want == 0 ? c.position(tp, Duration.ofSeconds(30)) : -1;
                out.println("seek\t" + op + "\t" + pos + "\t" + join(offs) + "\t" + String.join(",", vals));
            }
        }
    }

    // ---- long poll ----

    /**
     * Consumer sits at the log end with a long fetch.max.wait.ms; after --delay-ms a producer in this
     * process sends one record. Prints "longpoll TAB ms from producer ack to consumer receipt TAB offset".
     */
    private static void longpoll(Args a, PrintStream out) throws Exception {
        TopicPartition tp = new TopicPartition(a.req("topic"), Integer.parseInt(a.req("partition")));
        long delayMs = Long.parseLong(a.get("delay-ms", "2000"));
        byte[] value = bytes(a.req("value"));
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a.bootstrap());
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "20000");
        // The producer only feeds the consumer under test; keep it off InitProducerId so the
        // check is about the consumer's fetch alone.
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        AtomicLong ackNanos = new AtomicLong();
        java.util.concurrent.atomic.AtomicReference<String> sendError = new java.util.concurrent.atomic.AtomicReference<>();
        try (KafkaConsumer<byte[], byte[]> c = consumer(a);
             KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            producer.partitionsFor(tp.topic()); // warm metadata so the send itself is quick
            c.assign(List.of(tp));
            c.seekToEnd(List.of(tp));
            long start = c.position(tp, Duration.ofSeconds(30));
            Thread sender = new Thread(() -> {
                try {
                    Thread.sleep(delayMs);
                    producer.send(new ProducerRecord<>(tp.topic(), tp.partition(), null, value)).get(30, TimeUnit.SECONDS);
                    ackNanos.set(System.nanoTime());
                } catch (Exception e) {
                    sendError.set(e.toString());
                    e.printStackTrace(System.err);
                }
            });
            sender.start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
            ConsumerRecord<byte[], byte[]> got = null;
            long gotNanos = 0;
            while (got == null && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(100))) {
                    if (got == null) { got = r; gotNanos = System.nanoTime(); }
                }
            }
            sender.join(40_000);
            if (sendError.get() != null) throw new IllegalStateException("helper producer failed: " + sendError.get());
            if (got == null) throw new IllegalStateException("no record received within 40 s (start offset " + start + ")");
            if (ackNanos.get() == 0) throw new IllegalStateException("producer never got an ack");
            long ms = TimeUnit.NANOSECONDS.toMillis(gotNanos - ackNanos.get());
            out.println("longpoll\t" + ms + "\t" + got.offset() + "\t" + start + "\t" + hex(got.value()));
        }
    }

    // ---- group member ----

    /**
     * One group member (group.protocol from --prop, classic by default) driven over stdin, so a
     * test can run several members side by side and make them commit or leave when it wants.
     * The consumer stays on this thread (it is not thread-safe); a reader thread only queues
     * the commands. Bounded by --max-ms.
     */
    private static void group(Args a, PrintStream out) throws Exception {
        String topic = a.get("topic", "");
        String pattern = a.get("pattern", "");
        if (topic.isEmpty() == pattern.isEmpty()) throw new IllegalArgumentException("give --topic or --pattern");
        a.props.put(ConsumerConfig.GROUP_ID_CONFIG, a.req("group"));
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Long.parseLong(a.get("max-ms", "300000")));
        java.util.concurrent.BlockingQueue<String> commands = new java.util.concurrent.LinkedBlockingQueue<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (!line.isBlank()) commands.add(line.trim());
                }
            } catch (Exception e) {
                e.printStackTrace(System.err);
            }
            commands.add("close");
        });
        reader.setDaemon(true);
        reader.start();
        KafkaConsumer<byte[], byte[]> c = consumer(a);
        try {
            // --pattern: a server-side regex subscription (KIP-848 SubscriptionPattern).
            if (pattern.isEmpty()) c.subscribe(List.of(topic));
            else c.subscribe(new org.apache.kafka.clients.consumer.SubscriptionPattern(pattern));
            String last = null;
            while (System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(100))) {
                    out.println("rec\t" + r.partition() + "\t" + r.offset() + "\t" + hex(r.value()));
                }
                List<String> owned = new ArrayList<>();
                for (TopicPartition tp : c.assignment()) {
                    if (tp.topic().equals(topic)) owned.add(String.valueOf(tp.partition()));
                    else if (!pattern.isEmpty()) owned.add(tp.topic() + ":" + tp.partition());
                }
                owned.sort(null);
                String now = String.join(",", owned);
                if (!now.equals(last)) {
                    out.println("assignment\t" + now);
                    last = now;
                }
                String cmd;
                while ((cmd = commands.poll()) != null) {
                    if (cmd.equals("commit")) {
                        c.commitSync(Duration.ofSeconds(30));
                        out.println("committed");
                    } else if (cmd.startsWith("committed ")) {
                        java.util.Set<TopicPartition> tps = new java.util.HashSet<>();
                        for (String p : cmd.substring(10).split(",")) tps.add(new TopicPartition(topic, Integer.parseInt(p)));
                        StringBuilder b = new StringBuilder();
                        for (Map.Entry<TopicPartition, org.apache.kafka.clients.consumer.OffsetAndMetadata> e
                                : c.committed(tps, Duration.ofSeconds(30)).entrySet()) {
                            if (b.length() > 0) b.append(',');
                            b.append(e.getKey().partition()).append(':').append(e.getValue() == null ? -1 : e.getValue().offset());
                        }
                        out.println("committed-offsets\t" + b);
                    } else if (cmd.equals("close")) {
                        c.close(Duration.ofSeconds(30));
                        c = null;
                        out.println("closed");
                        return;
                    } else {
                        throw new IllegalArgumentException("unknown group command " + cmd);
                    }
                }
                out.flush();
            }
            throw new IllegalStateException("group member still running after --max-ms");
        } finally {
            if (c != null) c.close(Duration.ofSeconds(30));
            out.flush();
        }
    }

    // ---- helpers ----

    private static byte[] bytes(String field) {
        if (field.equals("~")) return null;
        return HEX.parseHex(field);
    }

    private static String hex(byte[] b) {
        return b == null ? "~" : HEX.formatHex(b);
    }

    private static List<Header> headers(String field) {
        List<Header> hs = new ArrayList<>();
        if (field.isEmpty()) return hs;
        for (String kv : field.split(",", -1)) {
            int i = kv.indexOf(':');
            if (i < 0) throw new IllegalArgumentException("bad header " + kv);
            hs.add(new RecordHeader(new String(HEX.parseHex(kv.substring(0, i)), StandardCharsets.UTF_8), bytes(kv.substring(i + 1))));
        }
        return hs;
    }

    private static String join(Collection<Long> xs) {
        StringBuilder b = new StringBuilder();
        for (Long x : xs) { if (b.length() > 0) b.append(','); b.append(x); }
        return b.toString();
    }

    /** --bootstrap, --prop k=v (repeatable, passed to the client), and other --name value pairs. */
    private static final class Args {
        final String command;
        final Map<String, String> opts = new HashMap<>();
        final Properties props = new Properties();

        Args(String[] argv) {
            command = argv[0];
            for (int i = 1; i < argv.length; i += 2) {
                if (!argv[i].startsWith("--") || i + 1 >= argv.length) throw new IllegalArgumentException("bad argument " + argv[i]);
                String name = argv[i].substring(2);
                if (name.equals("prop")) {
                    String kv = argv[i + 1];
                    int eq = kv.indexOf('=');
                    props.put(kv.substring(0, eq), kv.substring(eq + 1));
                } else {
                    opts.put(name, argv[i + 1]);
                }
            }
        }

        String req(String name) {
            String v = opts.get(name);
            if (v == null) throw new IllegalArgumentException("missing --" + name);
            return v;
        }

        String get(String name, String dflt) {
            return opts.getOrDefault(name, dflt);
        }

        String bootstrap() {
            return req("bootstrap");
        }
    }
}
