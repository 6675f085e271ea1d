-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*M!999999\- enable the sandbox mode */
/*!40101 SET NAMES utf8mb4 */;
USE `shop`;
DROP TABLE IF EXISTS `t`;
CREATE TABLE `t` (
  `id` int NOT NULL AUTO_INCREMENT,
  `s` varchar(20) DEFAULT 'a;b',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB;
# a comment; with a semicolon
INSERT INTO `t` VALUES (1,'it''s; \'q\' \\ \n'),(2,NULL),(3,"d\"q;");
