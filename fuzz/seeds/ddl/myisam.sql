CREATE TABLE `m` (`a` int, `b` int, KEY `k`(`a`), KEY `k2` (`b`,`a`)) ENGINE=MyISAM
