<?php
// One PHP process writes a session under a chosen id, another reads it back. The save handler,
// save path and memcache.session_redundancy come from -d options on the command line.
// Usage: php session.php write ID VALUE   -> prints "written ID"
//        php session.php read ID          -> prints the session as JSON
if ($argc < 3) {
    fwrite(STDERR, "usage: session.php write ID VALUE | read ID\n");
    exit(2);
}
$action = $argv[1];
ini_set('session.use_cookies', '0');
// A chosen id that no session exists under yet must be accepted as is.
ini_set('session.use_strict_mode', '0');
session_id($argv[2]);
if (!session_start()) {
    fwrite(STDERR, "session_start failed\n");
    exit(1);
}
if ($action === 'write') {
    $_SESSION['value'] = $argv[3];
    $_SESSION['writes'] = ($_SESSION['writes'] ?? 0) + 1;
    if (!session_write_close()) {
        fwrite(STDERR, "session_write_close failed\n");
        exit(1);
    }
    echo "written ", session_id(), "\n";
} else {
    echo json_encode($_SESSION), "\n";
    session_write_close();
}
