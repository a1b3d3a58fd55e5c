<?php
// php-memcached over the binary protocol with SASL (setSaslAuthData); memcached.use_sasl=1
// must be set on the command line.
// Usage: php sasl_ops.php PORT USER PASSWORD good|bad
require __DIR__ . '/common.php';
[$_, $port, $user, $password, $expect] = $argv;
$m = new Memcached();
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, true);
$m->addServer('127.0.0.1', (int) $port);
$m->setSaslAuthData($user, $password);
if ($expect === 'bad') {
    check('set refused', $m->set('php:sasl:refused', 'x'), false);
    check('get refused', $m->get('php:sasl:refused'), false);
    echo "done\n";
    exit(0);
}
check('set', $m->set('php:sasl:str', 'hello over sasl'), true);
check('get', $m->get('php:sasl:str'), 'hello over sasl');
check('increment', $m->increment('php:sasl:ctr', 1, 5), 5);
check('increment again', $m->increment('php:sasl:ctr', 2), 7);
check('delete', $m->delete('php:sasl:str'), true);
check('get deleted', $m->get('php:sasl:str'), false);
echo "done\n";
