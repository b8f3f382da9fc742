// Writes a feedlab graph.edges file as SSTables of feed.follows and feed.followers, and its
// users as registered accounts (feed.users and feed.handles, handle "user<id>"), for
// `nodetool import` into a running node: the bulk-load path Cassandra documents for data that
// would take too long through CQL (the large graph is 88 M rows).
//
// usage: java -cp <cassandra jars> GraphSSTables.java GRAPH_EDGES OUT_DIR CREATED_AT_MS
// Writes OUT_DIR/feed/<table> for each of them (the importer takes the keyspace and
// table from the last two folders) and prints a progress line every 10 s. The layout of
// graph.edges is in workloads/graph.py; harness/seeding.py runs this.

import java.io.RandomAccessFile;
import java.nio.ByteOrder;
import java.nio.IntBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Date;

import org.apache.cassandra.dht.Murmur3Partitioner;
import org.apache.cassandra.io.sstable.CQLSSTableWriter;
import org.apache.cassandra.utils.ByteBufferUtil;

public class GraphSSTables {
    static final String MAGIC = "FLGRAPH\n";

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: GraphSSTables GRAPH_EDGES OUT_DIR CREATED_AT_MS");
            System.exit(2);
        }
        IntBuffer ints;
        try (RandomAccessFile file = new RandomAccessFile(args[0], "r"); FileChannel ch = file.getChannel()) {
            var bytes = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size()).order(ByteOrder.LITTLE_ENDIAN);
            byte[] magic = new byte[MAGIC.length()];
            bytes.get(magic);
            if (!MAGIC.equals(new String(magic, StandardCharsets.US_ASCII)))
                throw new IllegalArgumentException(args[0] + ": not a feedlab graph.edges file");
            ints = bytes.slice().order(ByteOrder.LITTLE_ENDIAN).asIntBuffer();
        }
        if (ints.get(0) != 1)
            throw new IllegalArgumentException(args[0] + ": unknown format " + ints.get(0));
        int users = ints.get(1);
        int[] offsets = new int[users + 2];
        ints.position(2);
        ints.get(offsets);
        int[] followers = new int[offsets[users + 1]];   // author -> followers (CSR, ascending)
        ints.get(followers);

        // The reverse direction, follower -> followees: walking authors in ascending order
        // appends each follower's followees in ascending order.
        int[] fwdOffsets = new int[users + 2];
        for (int f : followers) fwdOffsets[f + 1]++;
        for (int u = 1; u <= users + 1; u++) fwdOffsets[u] += fwdOffsets[u - 1];
        int[] followees = new int[followers.length];
        int[] next = Arrays.copyOf(fwdOffsets, fwdOffsets.length);
        for (int a = 1; a <= users; a++)
            for (int i = offsets[a]; i < offsets[a + 1]; i++)
                followees[next[followers[i]]++] = a;

        Integer[] byToken = tokenOrder(users);
        Date createdAt = new Date(Long.parseLong(args[2]));
        long total = 2L * followers.length + 2L * users;
        long rows = write(args[1] + "/feed/followers",
                "CREATE TABLE feed.followers (followee_id bigint, follower_id bigint, created_at timestamp, "
                        + "PRIMARY KEY (followee_id, follower_id))",
                "INSERT INTO feed.followers (followee_id, follower_id, created_at) VALUES (?, ?, ?)",
                byToken, offsets, followers, createdAt, 0, total);
        rows += write(args[1] + "/feed/follows",
                "CREATE TABLE feed.follows (follower_id bigint, followee_id bigint, created_at timestamp, "
                        + "PRIMARY KEY (follower_id, followee_id))",
                "INSERT INTO feed.follows (follower_id, followee_id, created_at) VALUES (?, ?, ?)",
                byToken, fwdOffsets, followees, createdAt, rows, total);
        rows += writeUsers(args[1], byToken, createdAt);
        System.out.println(rows + " rows written");
    }

    // User ids in the partitioner's token order: what a sorted writer requires, and what lets
    // it stream rows to disk without buffering the table in memory.
    static Integer[] tokenOrder(int users) {
        long[] tokens = new long[users + 1];
        Integer[] ids = new Integer[users];
        for (int u = 1; u <= users; u++) {
            tokens[u] = Murmur3Partitioner.instance.getToken(ByteBufferUtil.bytes((long) u)).getLongValue();
            ids[u - 1] = u;
        }
        Arrays.sort(ids, (a, b) -> Long.compare(tokens[a], tokens[b]));
        return ids;
    }

    // Every user registered, as PUT /v1/users/me would: a profile, and its handle claimed.
    static long writeUsers(String out, Integer[] byToken, Date createdAt) throws Exception {
        String users = out + "/feed/users";
        new java.io.File(users).mkdirs();
        try (CQLSSTableWriter writer = CQLSSTableWriter.builder().inDirectory(users)
                .forTable("CREATE TABLE feed.users (user_id bigint PRIMARY KEY, handle text, display_name text, "
                        + "follower_count int, is_celebrity boolean, fanout_tier text, created_at timestamp)")
                .using("INSERT INTO feed.users (user_id, handle, display_name, created_at) VALUES (?, ?, ?, ?)")
                .withPartitioner(Murmur3Partitioner.instance).sorted().build()) {
            for (int u : byToken)
                writer.addRow((long) u, "user" + u, "User " + u, createdAt);
        }
        String[] keys = new String[byToken.length];
        long[] tokens = new long[byToken.length];
        Integer[] order = new Integer[byToken.length];
        for (int i = 0; i < byToken.length; i++) {
            keys[i] = "user" + byToken[i];
            tokens[i] = Murmur3Partitioner.instance.getToken(ByteBufferUtil.bytes(keys[i])).getLongValue();
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Long.compare(tokens[a], tokens[b]));
        String handles = out + "/feed/handles";
        new java.io.File(handles).mkdirs();
        try (CQLSSTableWriter writer = CQLSSTableWriter.builder().inDirectory(handles)
                .forTable("CREATE TABLE feed.handles (handle_key text PRIMARY KEY, user_id bigint)")
                .using("INSERT INTO feed.handles (handle_key, user_id) VALUES (?, ?)")
                .withPartitioner(Murmur3Partitioner.instance).sorted().build()) {
            for (int i : order)
                writer.addRow(keys[i], (long) byToken[i]);
        }
        return 2L * byToken.length;
    }

    static long write(String dir, String schema, String insert, Integer[] partitions, int[] offsets, int[] rows,
                      Date createdAt, long before, long total) throws Exception {
        new java.io.File(dir).mkdirs();
        long n = 0;
        long last = System.nanoTime();
        try (CQLSSTableWriter writer = CQLSSTableWriter.builder().inDirectory(dir).forTable(schema).using(insert)
                .withPartitioner(Murmur3Partitioner.instance).sorted().build()) {
            for (int key : partitions) {
                Long k = (long) key;
                for (int i = offsets[key]; i < offsets[key + 1]; i++) {
                    writer.addRow(k, (long) rows[i], createdAt);
                    n++;
                }
                if (System.nanoTime() - last > 10_000_000_000L) {
                    last = System.nanoTime();
                    System.out.printf("%d%% of the rows written%n", (before + n) * 100 / Math.max(1, total));
                    System.out.flush();
                }
            }
        }
        return n;
    }
}
