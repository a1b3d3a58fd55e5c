<?php
// Shared by the PHP scenario scripts: check() prints "ok <name>" or exits 1 with a FAIL line.
function check(string $name, $got, $want): void
{
    if ($got !== $want) {
        fwrite(STDERR, "FAIL $name: got " . var_export($got, true) . ", want " . var_export($want, true) . "\n");
        exit(1);
    }
    echo "ok $name\n";
}
