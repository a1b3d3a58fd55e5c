<?php
// php-memcached (libmemcached) scenario. Usage: php memcached_ops.php PORT text|binary
// Expects key "from_python" = "written by python"; leaves "php:str" for the caller.
require __DIR__ . '/common.php';

[$_, $port, $mode] = $argv;
$m = new Memcached();
$m->setOptions([
    Memcached::OPT_BINARY_PROTOCOL => $mode === 'binary',
    Memcached::OPT_COMPRESSION => false,
    Memcached::OPT_CONNECT_TIMEOUT => 5000,
    Memcached::OPT_RECV_TIMEOUT => 5000000,
    Memcached::OPT_SEND_TIMEOUT => 5000000,
    Memcached::OPT_POLL_TIMEOUT => 5000,
]);
check('add server', $m->addServer('127.0.0.1', (int)$port), true);
check('protocol', (bool)$m->getOption(Memcached::OPT_BINARY_PROTOCOL), $mode === 'binary');

// set / get
check('set', $m->set('php:str', 'hello from php'), true);
check('get', $m->get('php:str'), 'hello from php');
check('get missing', $m->get('php:missing'), false);
check('get missing result code', $m->getResultCode(), Memcached::RES_NOTFOUND);
check('set array', $m->set('php:arr', ['a' => 1, 'b' => [2, 3]]), true);
check('get array', $m->get('php:arr'), ['a' => 1, 'b' => [2, 3]]);
$bytes = '';
for ($i = 0; $i < 256; $i++) {
    $bytes .= chr($i);
}
check('set bytes', $m->set('php:bytes', $bytes), true);
check('get bytes', $m->get('php:bytes'), $bytes);
check('set empty', $m->set('php:empty', ''), true);
check('get empty', $m->get('php:empty'), '');
check('add existing', $m->add('php:str', 'x'), false);
check('replace missing', $m->replace('php:nope', 'x'), false);
check('read python key', $m->get('from_python'), 'written by python');

// getMulti
$want = [];
for ($i = 0; $i < 100; $i++) {
    $want["php:multi:$i"] = "value-$i";
}
check('setMulti', $m->setMulti($want), true);
$got = $m->getMulti(array_merge(array_keys($want), ['php:multi:absent']));
ksort($got);
ksort($want);
check('getMulti', $got, $want);

// cas
$res = $m->get('php:str', null, Memcached::GET_EXTENDED);
check('get extended', $res['value'], 'hello from php');
check('cas', $m->cas($res['cas'], 'php:str', 'cas-updated'), true);
check('cas stale', $m->cas($res['cas'], 'php:str', 'lost'), false);
check('cas stale result code', $m->getResultCode(), Memcached::RES_DATA_EXISTS);
check('after cas', $m->get('php:str'), 'cas-updated');
check('restore', $m->set('php:str', 'hello from php'), true);

// increment / decrement
check('set counter', $m->set('php:ctr', 10), true);
check('increment', $m->increment('php:ctr', 5), 15);
check('decrement', $m->decrement('php:ctr', 20), 0);
check('increment again', $m->increment('php:ctr'), 1);
check('increment missing', $m->increment('php:ctr-absent', 1), false);

// delete / touch
check('delete', $m->delete('php:empty'), true);
check('delete missing', $m->delete('php:empty'), false);
check('touch', $m->touch('php:ctr', 100), true);
check('get after touch', $m->get('php:ctr'), 1);
echo "done\n";
