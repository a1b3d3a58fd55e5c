<?php
// Discover the cluster through one configuration endpoint (`config get cluster`, read the way
// the ElastiCache auto-discovery clients read it), then spread keys over the discovered nodes
// with php-memcache; memcache.hash_strategy=consistent comes from a -d option.
// Usage: php memcache_consistent.php HOST:PORT COUNT PREFIX
// Prints one JSON object: {"version", "nodes", "stored", "read", "hash_strategy"}.

function fail(string $msg): void
{
    fwrite(STDERR, "$msg\n");
    exit(1);
}

function read_exact($sock, int $n): string
{
    $data = '';
    while (strlen($data) < $n) {
        $chunk = fread($sock, $n - strlen($data));
        if ($chunk === false || $chunk === '') {
            fail('connection closed or timed out while reading the config');
        }
        $data .= $chunk;
    }
    return $data;
}

/** [version, [[address, port], ...]] from one configuration endpoint. */
function discover(string $endpoint): array
{
    $sock = stream_socket_client("tcp://$endpoint", $errno, $errstr, 2.0);
    if ($sock === false) {
        fail("cannot connect to $endpoint: $errstr");
    }
    stream_set_timeout($sock, 2);
    fwrite($sock, "config get cluster\r\n");
    $header = fgets($sock);
    if (!preg_match('/^CONFIG cluster 0 (\d+)\r\n$/', (string)$header, $m)) {
        fail('unexpected reply: ' . var_export($header, true));
    }
    $len = (int)$m[1];
    $block = read_exact($sock, $len + 2);
    if (substr($block, $len) !== "\r\n") {
        fail("the body is not $len bytes long");
    }
    if (fgets($sock) !== "END\r\n") {
        fail('no END after the config');
    }
    fclose($sock);
    $lines = preg_split('/\r?\n/', trim(substr($block, 0, $len)));
    if (count($lines) !== 2 || !ctype_digit(trim($lines[0]))) {
        fail('bad config body: ' . var_export($block, true));
    }
    $nodes = [];
    foreach (preg_split('/\s+/', trim($lines[1])) as $entry) {
        $fields = explode('|', $entry);
        if (count($fields) !== 3 || $fields[0] === '' || !ctype_digit($fields[2])) {
            fail("bad node entry $entry");
        }
        [$host, $ip, $port] = $fields;
        $nodes[] = [$ip !== '' ? $ip : $host, (int)$port];
    }
    return [(int)trim($lines[0]), $nodes];
}

if ($argc !== 4) {
    fail('usage: memcache_consistent.php HOST:PORT COUNT PREFIX');
}
[$_, $endpoint, $count, $prefix] = $argv;
$count = (int)$count;
[$version, $nodes] = discover($endpoint);

$mc = new Memcache();
foreach ($nodes as [$address, $port]) {
    // Not persistent, weight 1, 1 s timeout.
    if (!$mc->addServer($address, $port, false, 1, 1)) {
        fail("addServer $address:$port failed");
    }
}
$stored = 0;
for ($i = 0; $i < $count; $i++) {
    if ($mc->set("$prefix:$i", "value-$i", 0, 0)) {
        $stored++;
    }
}
$read = 0;
for ($i = 0; $i < $count; $i += 100) {
    $keys = [];
    for ($j = $i; $j < min($i + 100, $count); $j++) {
        $keys[] = "$prefix:$j";
    }
    foreach ($mc->get($keys) as $key => $value) {
        if ($value === 'value-' . substr($key, strlen($prefix) + 1)) {
            $read++;
        }
    }
}
echo json_encode([
    'version' => $version,
    'nodes' => array_map(fn($n) => "$n[0]:$n[1]", $nodes),
    'stored' => $stored,
    'read' => $read,
    'hash_strategy' => ini_get('memcache.hash_strategy'),
]), "\n";
