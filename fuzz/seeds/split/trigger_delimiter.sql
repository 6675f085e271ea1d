DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `trg` BEFORE INSERT ON `t` FOR EACH ROW BEGIN
  SET NEW.s = CONCAT(NEW.s, ';');
  -- inner; comment
  SET @n = @n + 1;
END */;;
DELIMITER ;
delimiter $$
CREATE PROCEDURE p() BEGIN SELECT 1; END$$
DELIMITER ;
SELECT 'done';
