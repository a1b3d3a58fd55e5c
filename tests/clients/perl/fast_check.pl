#!/usr/bin/perl
# Cache::Memcached::Fast scenario for tests/clients/test_client_perl.py.
# Usage: perl fast_check.pl PORT
# Prints "ok <check>" per passed check, exits 1 at the first failure. Expects key "from_python"
# (written by the Python test) and leaves "perl:str" for the caller to read back.
use strict;
use warnings;
use Cache::Memcached::Fast;

my $port = shift or die "usage: $0 PORT\n";
my $mc = Cache::Memcached::Fast->new({
    servers         => ["127.0.0.1:$port"],
    connect_timeout => 5,
    io_timeout      => 5,
    utf8            => 0,
    compress_threshold => -1,
});

# Outcome of a write: 'true', 'false' (the server said no) or 'undef' (an error).
sub tf { my ($r) = @_; defined $r ? ($r ? 'true' : 'false') : 'undef' }

sub check {
    my ($name, $got, $want) = @_;
    my $g = defined $got ? $got : '<undef>';
    my $w = defined $want ? $want : '<undef>';
    if ($g ne $w) {
        print STDERR "FAIL $name: got '$g', want '$w'\n";
        exit 1;
    }
    print "ok $name\n";
}

check('server versions', scalar(grep { /^\d+\.\d+/ } values %{ $mc->server_versions }), 1);
check('set', tf($mc->set('perl:str', 'hello from perl')), 'true');
check('get', $mc->get('perl:str'), 'hello from perl');
check('get missing', $mc->get('perl:missing'), undef);
my $bytes = join '', map { chr } 0 .. 255;
check('set bytes', tf($mc->set('perl:bytes', $bytes)), 'true');
check('get bytes', $mc->get('perl:bytes') eq $bytes ? 1 : 0, 1);
check('set empty', tf($mc->set('perl:empty', '')), 'true');
check('get empty', $mc->get('perl:empty'), '');
check('add existing', tf($mc->add('perl:str', 'x')), 'false');
check('replace missing', tf($mc->replace('perl:nope', 'x')), 'false');
check('append', tf($mc->append('perl:str', '!')), 'true');
check('get after append', $mc->get('perl:str'), 'hello from perl!');
check('set again', tf($mc->set('perl:str', 'hello from perl')), 'true');
check('read python key', $mc->get('from_python'), 'written by python');

my %want = map { ("perl:multi:$_" => "value-$_") } 1 .. 50;
$mc->set_multi(map { [$_, $want{$_}] } keys %want);
my $got = $mc->get_multi(keys %want, 'perl:multi:absent');
check('get_multi count', scalar(keys %$got), 50);
check('get_multi values', scalar(grep { $got->{$_} eq $want{$_} } keys %want), 50);

my $gets = $mc->gets('perl:str');
check('gets value', $gets->[1], 'hello from perl');
check('cas', tf($mc->cas('perl:str', $gets->[0], 'cas-updated')), 'true');
check('cas stale', tf($mc->cas('perl:str', $gets->[0], 'lost')), 'false');
check('after cas', $mc->get('perl:str'), 'cas-updated');
check('restore', tf($mc->set('perl:str', 'hello from perl')), 'true');

check('set counter', tf($mc->set('perl:ctr', 10)), 'true');
check('incr', $mc->incr('perl:ctr', 5), 15);
# A counter of zero comes back as '0E0' (zero but true): compare numerically.
check('decr', 0 + $mc->decr('perl:ctr', 20), 0);
check('incr missing', tf($mc->incr('perl:absent', 1)), 'false');
check('delete', tf($mc->delete('perl:empty')), 'true');
check('delete missing', tf($mc->delete('perl:empty')), 'false');
check('touch', tf($mc->touch('perl:ctr', 100)), 'true');
print "done\n";
