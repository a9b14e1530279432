#!/usr/bin/perl
# Full-backlog fixture: a listener on 127.0.0.1:PORT whose accept queue is
# full, so that a new connect() to it hangs (the kernel drops the SYN and the
# client retransmits for about two minutes).
#
#   perl backlog.pl PORT PIDFILE
#
# It listens with a backlog of 0 and never calls accept(), then fills the
# queue itself with a few non-blocking connections that it keeps open. Node
# cannot do this (libuv always accepts), which is why this one fixture is
# Perl; perl-base is essential on Debian, so it is always there.
# When the queue is full it writes its pid to PIDFILE (via a rename), then
# sleeps until it is killed.
use strict;
use warnings;
use Socket qw(:all);
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use POSIX qw(EINPROGRESS);

my ($port, $pidfile) = @ARGV;
die "usage: backlog.pl PORT PIDFILE\n" unless $port && $pidfile;

my $addr = sockaddr_in($port, inet_aton('127.0.0.1'));

socket(my $l, PF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
setsockopt($l, SOL_SOCKET, SO_REUSEADDR, 1) or die "setsockopt: $!\n";
bind($l, $addr) or die "bind 127.0.0.1:$port: $!\n";
listen($l, 0) or die "listen: $!\n";

# With backlog 0 the accept queue holds one connection; a few more make sure
# it is full whatever the kernel's exact rule (syncookies on or off).
my @fill;
for my $i (1 .. 4) {
    socket(my $c, PF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
    my $fl = fcntl($c, F_GETFL, 0) or die "fcntl: $!\n";
    fcntl($c, F_SETFL, $fl | O_NONBLOCK) or die "fcntl: $!\n";
    connect($c, $addr) or $! == EINPROGRESS or die "connect: $!\n";
    push @fill, $c;
}

# Wait until the first filler has completed its handshake (it is then in the
# accept queue), at most 3 seconds.
my $w = '';
vec($w, fileno($fill[0]), 1) = 1;
select(undef, my $wout = $w, undef, 3) or die "first filler never connected\n";
select(undef, undef, undef, 0.1);

open(my $fh, '>', "$pidfile.tmp") or die "$pidfile.tmp: $!\n";
print $fh "$$\n";
close($fh);
rename("$pidfile.tmp", $pidfile) or die "rename: $!\n";

$SIG{TERM} = $SIG{INT} = sub { exit 0 };
sleep 3600 while 1;
