<?php
// php-memcache (pecl memcache, its own protocol code) scenario. Usage: php memcache_ops.php PORT
// Expects key "from_python" = "written by python"; leaves "php1:str" for the caller.
require __DIR__ . '/common.php';

$port = (int)$argv[1];
$m = new Memcache();
check('connect', $m->connect('127.0.0.1', $port, 5), true);
check('set', $m->set('php1:str', 'hello from php-memcache', 0, 0), true);
check('get', $m->get('php1:str'), 'hello from php-memcache');
check('get missing', $m->get('php1:missing'), false);
check('set array', $m->set('php1:arr', [1, 'two' => 2]), true);
check('get array', $m->get('php1:arr'), [1, 'two' => 2]);
check('add existing', $m->add('php1:str', 'x'), false);
check('replace', $m->replace('php1:arr', 'replaced'), true);
check('read python key', $m->get('from_python'), 'written by python');

// multi-get: get() with an array of keys
$want = [];
for ($i = 0; $i < 50; $i++) {
    $want["php1:multi:$i"] = "v$i";
    $m->set("php1:multi:$i", "v$i");
}
$got = $m->get(array_merge(array_keys($want), ['php1:multi:absent']));
ksort($got);
ksort($want);
check('get multi', $got, $want);

// cas: get() with flags and cas by reference
$flags = null;
$cas = null;
check('get with cas', $m->get('php1:str', $flags, $cas), 'hello from php-memcache');
check('cas token', is_numeric($cas) && $cas > 0, true);
check('cas', $m->cas('php1:str', 'cas-updated', 0, 0, $cas), true);
check('cas stale', $m->cas('php1:str', 'lost', 0, 0, $cas), false);
check('after cas', $m->get('php1:str'), 'cas-updated');
check('restore', $m->set('php1:str', 'hello from php-memcache'), true);

// increment / decrement
check('set counter', $m->set('php1:ctr', '10'), true);
check('increment', $m->increment('php1:ctr', 5), 15);
check('decrement', $m->decrement('php1:ctr', 20), 0);
check('increment missing', $m->increment('php1:absent', 1), false);

check('delete', $m->delete('php1:arr'), true);
check('after delete', $m->get('php1:arr'), false);
$m->close();
echo "done\n";
