<?php
// One PHP process writes a session, another reads it back by id. The save handler and path come
// from -d options on the command line (session.save_handler / session.save_path).
// Usage: php session.php write VALUE   -> prints the new session id
//        php session.php read ID       -> prints the stored value
[$_, $action, $arg] = $argv;
ini_set('session.use_cookies', '0');
ini_set('session.use_strict_mode', '0');
if ($action === 'write') {
    if (!session_start()) {
        exit(1);
    }
    $_SESSION['value'] = $arg;
    $_SESSION['counter'] = 41;
    $id = session_id();
    if (!session_write_close()) {
        fwrite(STDERR, "session_write_close failed\n");
        exit(1);
    }
    echo $id, "\n";
} else {
    session_id($arg);
    if (!session_start()) {
        exit(1);
    }
    $_SESSION['counter']++;
    echo json_encode($_SESSION), "\n";
    session_write_close();
}
